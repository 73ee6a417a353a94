"""`affectflow predict VIDEO --model RNN_RUN_DIR`: a trace for a new video, end to end.

Alignment and normalization as the CNN's training faces were made (settings from
the CNN run.json), face-lost frames filled (the fill policy), CNN features, the
RNN over windows, the run's label shift applied; a CSV (time, <dimension>) at the
video's frame times and optionally a PNG plot of the trace.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict a valence/arousal trace for a video",
                              description="Align, normalize, CNN, RNN: write a CSV trace (time, value) at the "
                                          "video's frame times and optionally a PNG plot.")
    p.add_argument("video", type=Path)
    p.add_argument("--model", required=True, type=Path, help="RNN run dir (its run.json names the CNN run)")
    p.add_argument("-o", "--output", required=True, type=Path, help="TRACE.csv")
    p.add_argument("--plot", type=Path, default=None, help="TRACE.png")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="alignment threads")
    p.set_defaults(handler=_predict_command)


def _landmark_count(model_name) -> int:
    return 68 if model_name is not None and "68" in str(model_name) else 5


def predict_video(video: Path, rnn_run_dir: Path, device_name: str = "auto", threads: int | None = None,
                  progress: bool = True):
    """(times float64 [T], trace float32 [T], dimension) for a video."""
    import torch
    from tqdm import tqdm

    from .align import align_video
    from .dataset import apply_fill, rnn_inputs, shift_predictions
    from .errors import fail
    from .evaluate import read_run
    from .models import load_model
    from .train import extract_features
    from .trainer import resolve_device, rnn_window_predictions

    device = resolve_device(device_name)
    rnn_run = read_run(rnn_run_dir)
    if rnn_run.get("kind") != "rnn":
        raise fail(rnn_run_dir, "predict needs an RNN run dir (trained with `affectflow train-rnn`)")
    cnn_dir = rnn_run.get("cnn_run")
    if not cnn_dir or not (Path(cnn_dir) / "model.pt").is_file():
        raise fail(rnn_run_dir, f"the CNN run it was trained on ({cnn_dir}) is missing")
    cnn_run = read_run(Path(cnn_dir))
    faces = cnn_run.get("faces", {})
    with tqdm(total=3, desc="predict", unit="stage", disable=not progress) as bar:
        bar.set_postfix_str("align")
        options = {"detect_every": int(faces["detect_every"])} if faces.get("detect_every") else {}
        if faces.get("tracking") is not None:
            options["tracking"] = bool(faces["tracking"])
        landmarks = int(faces.get("landmarks") or _landmark_count(faces.get("landmark_model")))
        track = align_video(video, landmarks=landmarks,
                            chip_size=int(faces.get("chip_size", 96)),
                            normalization=faces.get("normalization") or "gcn", threads=threads, progress=progress,
                            **options)
        bar.update(1)
        bar.set_postfix_str("CNN")
        cnn, _ = load_model(Path(cnn_dir) / "model.pt", device)
        normalized = apply_fill(track.normalized, track.found, video)
        features, _ = extract_features(cnn, normalized)
        bar.update(1)
        bar.set_postfix_str("RNN")
        rnn, _ = load_model(Path(rnn_run_dir) / "model.pt", device)
        with torch.no_grad():
            inputs = rnn_inputs(features, rnn_run.get("feature_norm", "train"))
            raw = rnn_window_predictions(rnn, torch.from_numpy(inputs).to(device), int(rnn_run["window"]))
        trace = shift_predictions(track.time, raw, float(rnn_run.get("label_shift", 0.0)))
        bar.update(1)
    return track.time, trace, rnn_run.get("dimension", "valence")


def plot_trace(path: Path, times, trace, dimension: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    ax.plot(times, trace, lw=1.2)
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(dimension)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _predict_command(args) -> int:
    from .evaluate import write_trace_csv

    times, trace, dimension = predict_video(args.video, args.model, args.device, args.threads)
    write_trace_csv(args.output, times, {dimension: trace})
    if args.plot is not None:
        plot_trace(args.plot, times, trace, dimension, f"{args.video.name}: predicted {dimension}")
    return 0
