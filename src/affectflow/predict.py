"""`affectflow predict VIDEO --model RNN_RUN_DIR`: a trace for a new video, end to end.

Alignment and normalization as the CNN's training faces were made (settings from
the CNN run.json), face-lost frames filled (the fill policy), CNN features, the
RNN over windows, the run's label shift applied; a CSV (time, <dimension>...) at
the video's frame times and optionally a PNG plot of the traces. Several
--model runs (valence and arousal) give one column each.
"""

from __future__ import annotations

from pathlib import Path


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict a valence/arousal trace for a video",
                              description="Align, normalize, CNN, RNN: write a CSV trace (time, one column per "
                                          "dimension) at the video's frame times and optionally a PNG plot.")
    p.add_argument("video", type=Path)
    p.add_argument("--model", required=True, type=Path, action="append",
                   help="RNN run dir (its run.json names the CNN run); repeat for more dimensions "
                        "(e.g. a valence and an arousal run: one CSV column each)")
    p.add_argument("-o", "--output", required=True, type=Path, help="TRACE.csv")
    p.add_argument("--plot", type=Path, default=None, help="TRACE.png")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="alignment threads")
    p.set_defaults(handler=_predict_command)


def _landmark_count(model_name) -> int:
    return 68 if model_name is not None and "68" in str(model_name) else 5


def _align_options(faces: dict) -> dict:
    """align_video keywords that reproduce the CNN's training faces (from its run.json)."""
    options = {"landmarks": int(faces.get("landmarks") or _landmark_count(faces.get("landmark_model"))),
               "chip_size": int(faces.get("chip_size", 96))}
    if faces.get("detect_every"):
        options["detect_every"] = int(faces["detect_every"])
    if faces.get("tracking") is not None:
        options["tracking"] = bool(faces["tracking"])
    return options


def _runs(rnn_run_dir: Path) -> tuple[dict, Path, dict]:
    from .errors import fail
    from .evaluate import read_run

    rnn_run = read_run(rnn_run_dir)
    if rnn_run.get("kind") != "rnn":
        raise fail(rnn_run_dir, "predict needs an RNN run dir (trained with `affectflow train-rnn`)")
    cnn_dir = rnn_run.get("cnn_run")
    if not cnn_dir or not (Path(cnn_dir) / "model.pt").is_file():
        raise fail(rnn_run_dir, f"the CNN run it was trained on ({cnn_dir}) is missing")
    return rnn_run, Path(cnn_dir), read_run(Path(cnn_dir))


def predict_video(video: Path, rnn_run_dirs: list[Path], device_name: str = "auto", threads: int | None = None,
                  progress: bool = True) -> tuple:
    """(times float64 [T], {dimension: trace float32 [T]}) for a video, one trace per RNN run.

    The video is aligned once per distinct alignment setting of the runs' CNNs.
    """
    import torch
    from tqdm import tqdm

    from .align import align_video
    from .dataset import apply_fill, rnn_inputs, shift_predictions
    from .errors import fail
    from .models import load_model
    from .train import cnn_normalization
    from .trainer import extract_features, resolve_device, rnn_window_predictions

    device = resolve_device(device_name)
    runs = [(Path(d), *_runs(Path(d))) for d in rnn_run_dirs]
    tracks: dict[str, object] = {}
    traces: dict[str, object] = {}
    times = None
    with tqdm(total=3 * len(runs), desc="predict", unit="stage", disable=not progress) as bar:
        for rnn_dir, rnn_run, cnn_dir, cnn_run in runs:
            dimension = rnn_run.get("dimension", "valence")
            if dimension in traces:
                raise fail(rnn_dir, f"two models predict {dimension}")
            bar.set_postfix_str(f"{dimension}: align")
            options = _align_options(cnn_run.get("faces", {}))
            key = repr(sorted(options.items()))
            if key not in tracks:
                tracks[key] = align_video(video, threads=threads, progress=progress, **options)
            track = tracks[key]
            times = track.time
            bar.update(1)
            bar.set_postfix_str(f"{dimension}: CNN")
            cnn, _ = load_model(cnn_dir / "model.pt", device)
            features, _ = extract_features(cnn, apply_fill(track.chips, track.found, video),
                                           cnn_normalization(cnn_run, cnn_dir))
            bar.update(1)
            bar.set_postfix_str(f"{dimension}: RNN")
            rnn, _ = load_model(rnn_dir / "model.pt", device)
            with torch.no_grad():
                inputs = rnn_inputs(features, rnn_run.get("feature_norm", "train"), rnn_run.get("feature_prior"))
                raw = rnn_window_predictions(rnn, torch.from_numpy(inputs).to(device), int(rnn_run["window"]))
            traces[dimension] = shift_predictions(track.time, raw, float(rnn_run.get("label_shift", 0.0)))
            bar.update(1)
    return times, traces


def plot_traces(path: Path, times, traces: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    for dimension, trace in traces.items():
        ax.plot(times, trace, lw=1.2, label=dimension)
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("predicted value")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _predict_command(args) -> int:
    from .evaluate import write_trace_csv

    times, traces = predict_video(args.video, args.model, args.device, args.threads)
    write_trace_csv(args.output, times, traces)
    if args.plot is not None:
        plot_traces(args.plot, times, traces, f"{args.video.name}: predicted {', '.join(traces)}")
    return 0
