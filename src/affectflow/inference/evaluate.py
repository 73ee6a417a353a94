"""`affectflow evaluate`: predictions of a partition at the gold standard's rows, and their scores.

A CNN model file is scored on the feature files' `prediction` (the CNN's own
output, face-lost frames filled by the fill policy at extraction); an RNN model
file runs its RNN over the feature files (which must come from the CNN it
embeds), both through affectflow.inference.pipeline, the path `predict` takes. Scored as AVEC scores, one value per
gold-standard row: the prediction of frame t is placed at t + shift (the run's
label shift, the annotation delay) and each row of the unshifted gold standard
takes the last placed prediction at or before its time (causal: no row uses a
later frame), so every gold row of every recording is scored, whatever the
video's frame rate or dropped frames. Labels by frame (Aff-Wild2): the scored
rows are every decoded frame with a valid label (not -5, not past the label
file's end), at the frame's own time, as ABAW scores; a frame without a face
still has a prediction under the fill policy, placed by the same convention.
Scores: over all recordings concatenated (the headline) and the mean of
per-recording scores.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..contracts import PARTITIONS
from ..io import OutputPath
from ..options import add_device
from .traces import write_trace_csv


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="score a CNN or RNN run on a partition",
        description="Write PREDICTIONS_DIR/{subject}.csv (time,prediction,gold: one row per gold-standard row, "
        "or per validly labelled frame for labels by frame) and METRICS.json (RMSE, CC, CCC concatenated and "
        "per recording).",
    )
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument("--model", required=True, type=Path, help="CNN or RNN model file (a run dir means its model file)")
    p.add_argument(
        "--features",
        required=True,
        type=Path,
        nargs="+",
        help="feature files {subject}.h5 of the subjects to score (made by the model's CNN)",
    )
    p.add_argument("--partition", default="dev", choices=PARTITIONS, help="the partition the subjects must belong to")
    p.add_argument("--predictions-dir", required=True, type=OutputPath)
    p.add_argument("-o", "--output", required=True, type=OutputPath)
    add_device(p)
    p.set_defaults(handler=_evaluate_command)


def evaluate_run(
    corpus_path: Path,
    model_path: Path,
    feature_files: list[Path],
    partition: str,
    predictions_dir: Path,
    device_name: str = "auto",
) -> dict:
    import numpy as np

    from ..data.corpus import open_corpus
    from ..data.fill import FILL_POLICY
    from ..data.labels import TIME_CONVENTION, scored_labels, scored_predictions
    from ..errors import fail
    from ..metrics import mean_scores, scores
    from ..nets.tensors import resolve_device
    from .pipeline import load_pipeline

    pipeline = load_pipeline(model_path, resolve_device(device_name))
    dimension = pipeline.dimension
    corpus = open_corpus(corpus_path)
    files = {Path(f).stem: Path(f) for f in feature_files}
    for subject, path in files.items():
        if subject not in corpus.subjects(partition):
            raise fail(path, f"subject {subject!r} is not a {partition} subject of {corpus_path}")
    subjects = [s for s in corpus.subjects(partition) if s in files and dimension in corpus.recording(s).labels]
    if not subjects:
        raise fail(corpus_path, f"none of the given {partition} subjects has {dimension} labels")
    shift = pipeline.label_shift
    preds, golds, per_recording = [], [], {}
    for subject in subjects:
        frame_times, raw = pipeline.predict_features(files[subject])
        # One prediction per gold row, at the row's own time: no row is lost to a dropped frame or another fps.
        # (By frame: one row per validly labelled frame, at the frame's time.)
        label_times, gold = scored_labels(corpus.recording(subject), dimension, frame_times)
        try:
            pred = scored_predictions(corpus.recording(subject), frame_times, raw, label_times, shift)
        except ValueError as error:
            raise fail(files[subject], f"cannot place its predictions in time ({error})") from None
        write_trace_csv(Path(predictions_dir) / f"{subject}.csv", label_times, {"prediction": pred, "gold": gold})
        per_recording[subject] = scores(pred, gold)
        preds.append(pred)
        golds.append(gold)
    pred_all, gold_all = np.concatenate(preds), np.concatenate(golds)
    label_rows = int(np.sum(np.isfinite(gold_all)))
    run = pipeline.run_info
    return {
        "model": str(pipeline.path),
        "kind": pipeline.kind,
        "partition": partition,
        "dimension": dimension,
        "selection": run.get("selection", "dev"),
        "fill_policy": run.get("fill_policy", FILL_POLICY),
        "label_shift": shift,
        "time_convention": TIME_CONVENTION,
        # Scored at the gold rows' times: `frames` is kept as an alias of `label_rows` for older readers.
        "label_rows": label_rows,
        "frames": label_rows,
        "concatenated": scores(pred_all, gold_all),
        "per_recording_mean": mean_scores(per_recording),
        "per_recording": per_recording,
        "settings": run,
    }


def _evaluate_command(args) -> int:
    from ..io import atomic_path

    result = evaluate_run(args.corpus, args.model, args.features, args.partition, args.predictions_dir, args.device)
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
