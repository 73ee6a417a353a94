"""`affectflow evaluate`: predictions of a partition at the gold standard's rows, and their scores.

A CNN run dir is scored on the feature files' `prediction` (the CNN's own
output, face-lost frames filled by the fill policy at extraction); an RNN run
dir runs its RNN over the feature files. Scored as AVEC scores, one value per
gold-standard row: the prediction of frame t is placed at t + shift (the run's
label shift, the annotation delay) and each row of the unshifted gold standard
takes the last placed prediction at or before its time (causal: no row uses a
later frame), so every gold row of every recording is scored, whatever the
video's frame rate or dropped frames. Scores: over all recordings
concatenated (the headline) and the mean of per-recording scores.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a CNN or RNN run on a partition",
                              description="Write PREDICTIONS_DIR/{subject}.csv (time,prediction,gold) and "
                                          "METRICS.json (RMSE, CC, CCC concatenated and per recording).")
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument("--model", required=True, type=Path, help="CNN or RNN run dir")
    p.add_argument("--features-dir", required=True, type=Path)
    p.add_argument("--partition", default="dev")
    p.add_argument("--predictions-dir", required=True, type=Path)
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(handler=_evaluate_command)


def read_run(run_dir: Path) -> dict:
    from .errors import fail

    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise fail(run_dir, "not a finished run dir (no run.json)")
    return json.loads(path.read_text())


def predict_subject(kind: str, run: dict, model, features_path: Path, device) -> tuple:
    """(frame times, raw per-frame prediction) for one subject, NOT yet shifted by the run's label shift.

    evaluate_run places the prediction of frame t at t + shift on the gold standard's clock.
    """
    import torch

    from .dataset import load_features, read_prediction, rnn_inputs
    from .trainer import rnn_window_predictions

    if kind == "cnn":
        times, raw = read_prediction(features_path)
    else:
        frames = load_features(features_path, features_path.stem)
        times = frames.time
        inputs = rnn_inputs(frames.data, run.get("feature_norm", "train"), run.get("feature_prior"))
        with torch.no_grad():
            raw = rnn_window_predictions(model, torch.from_numpy(inputs).to(device), int(run["window"]))
    return times, raw


def write_trace_csv(path: Path, times, columns: dict) -> None:
    from .io import atomic_path

    names = list(columns)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(",".join(["time"] + names) + "\n")
            for i, t in enumerate(times):
                fh.write(f"{t:.3f}," + ",".join(f"{float(columns[n][i]):.6f}" for n in names) + "\n")


def evaluate_run(corpus_path: Path, run_dir: Path, features_dir: Path, partition: str, predictions_dir: Path,
                 device_name: str = "auto") -> dict:
    import numpy as np

    from .corpus import open_corpus
    from .dataset import FILL_POLICY, predictions_on_label_times, read_gold
    from .errors import fail
    from .metrics import mean_scores, scores
    from .models import load_model
    from .trainer import resolve_device

    run = read_run(run_dir)
    kind = run.get("kind")
    device = resolve_device(device_name)
    model = None
    if kind == "rnn":
        model, _ = load_model(Path(run_dir) / "model.pt", device)
    elif kind != "cnn":
        raise fail(run_dir, f"run.json has unknown kind {kind!r}")
    dimension = run.get("dimension", "valence")
    corpus = open_corpus(corpus_path)
    subjects = [s for s in corpus.subjects(partition) if dimension in corpus.recording(s).labels]
    if not subjects:
        raise fail(corpus_path, f"no {partition} subject with {dimension} labels")
    shift = float(run.get("label_shift", 0.0))
    preds, golds, per_recording = [], [], {}
    for subject in subjects:
        features_path = Path(features_dir) / f"{subject}.h5"
        frame_times, raw = predict_subject(kind, run, model, features_path, device)
        # One prediction per gold row, at the row's own time: no row is lost to a dropped frame or another fps.
        label_times, gold = read_gold(corpus.recording(subject), dimension)
        try:
            pred = predictions_on_label_times(frame_times, raw, label_times, shift)
        except ValueError as error:
            raise fail(features_path, f"cannot place its predictions in time ({error})") from None
        write_trace_csv(Path(predictions_dir) / f"{subject}.csv", label_times, {"prediction": pred, "gold": gold})
        per_recording[subject] = scores(pred, gold)
        preds.append(pred)
        golds.append(gold)
    pred_all, gold_all = np.concatenate(preds), np.concatenate(golds)
    label_rows = int(np.sum(np.isfinite(gold_all)))
    return {"model": str(run_dir), "kind": kind, "partition": partition, "dimension": dimension,
            "selection": run.get("selection", "dev"), "fill_policy": run.get("fill_policy", FILL_POLICY),
            "label_shift": shift,
            # Scored at the gold rows' times: `frames` is kept as an alias of `label_rows` for older readers.
            "label_rows": label_rows, "frames": label_rows, "concatenated": scores(pred_all, gold_all),
            "per_recording_mean": mean_scores(per_recording), "per_recording": per_recording, "settings": run}


def _evaluate_command(args) -> int:
    from .io import atomic_path

    result = evaluate_run(args.corpus, args.model, args.features_dir, args.partition, args.predictions_dir,
                          args.device)
    with atomic_path(args.output) as tmp:
        # NaN scores (e.g. CC of a constant prediction) are written as JSON null
        tmp.write_text(json.dumps(_nan_to_none(result), indent=2, sort_keys=True) + "\n")
    return 0


def _nan_to_none(value):
    import math

    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
