"""`affectflow predict VIDEO --model FILE` and `affectflow extract`: the trained models on new data.

predict: the video is aligned as the CNN's training faces were (the model file's alignment
settings), face-lost frames are filled (the fill policy), and the model file's pipeline
(affectflow.inference: CNN, RNN over windows) gives a trace; the label shift is applied
at the video's frame times. A CSV (time, <dimension>...) and optionally a PNG plot.
Several --model files (valence and arousal) give one column each. A model file is
self-contained: an RNN's embeds its CNN, so a copied model file predicts on its own.

extract: a CNN model file's features and predictions for one face file (the RNN's input).
"""

from __future__ import annotations

from pathlib import Path

from .contracts import DEFAULT_FACE_RULE, DEVICES, FACE_RULES
from .io import OutputPath


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="predict a valence/arousal trace for a video",
        description="Align, normalize, CNN, RNN: write a CSV trace (time, one column per "
        "dimension) at the video's frame times and optionally a PNG plot.",
    )
    p.add_argument("video", type=Path)
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        action="append",
        help="model file (an RNN's, or a CNN's; a run dir means its model file); repeat for more "
        "dimensions (e.g. a valence and an arousal model: one CSV column each)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=OutputPath,
        help="TRACE.csv (and TRACE.json: the models and time convention)",
    )
    p.add_argument("--plot", type=OutputPath, default=None, help="TRACE.png")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--threads", type=int, default=None, help="alignment threads")
    p.add_argument(
        "--face",
        choices=FACE_RULES,
        default=DEFAULT_FACE_RULE,
        help="which face of several: the detector's best, or the leftmost / rightmost (see `affectflow align`)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_predict_command)

    p = subparsers.add_parser(
        "extract",
        help="frozen CNN -> per-frame features of one subject",
        description="Write FEATURES.h5: features [T,fc], prediction [T], found [T], time [T] "
        "(face-lost frames filled by the fill policy).",
    )
    p.add_argument("--model", required=True, type=Path, help="CNN model file (a run dir means its model file)")
    p.add_argument("--faces", required=True, type=Path)
    p.add_argument("-o", "--output", required=True, type=OutputPath)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--batch-size", type=int, default=512)
    p.set_defaults(handler=_extract_command)


def predict_video(
    video: Path,
    model_files: list[Path],
    device_name: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    face: str = DEFAULT_FACE_RULE,
) -> tuple:
    """(frame times float64 [T], {dimension: trace float32 [T]}) for a video, one trace per model file.

    The video is aligned once per distinct alignment setting of the models' CNNs.
    """
    from tqdm import tqdm

    from .align import align_video
    from .dataset import apply_fill, shift_predictions
    from .errors import fail
    from .inference import load_pipeline
    from .tensors import resolve_device

    device = resolve_device(device_name)
    pipelines = [load_pipeline(path, device) for path in model_files]
    tracks: dict[str, object] = {}
    traces: dict[str, object] = {}
    times = None
    with tqdm(total=2 * len(pipelines), desc="predict", unit="stage", disable=not progress) as bar:
        for pipeline in pipelines:
            dimension = pipeline.dimension
            if dimension in traces:
                raise fail(pipeline.path, f"two models predict {dimension}")
            bar.set_postfix_str(f"{dimension}: align")
            options = pipeline.align_options()
            key = repr(sorted(options.items()))
            if key not in tracks:
                tracks[key] = align_video(video, threads=threads, progress=progress, face=face, **options)
            track = tracks[key]
            times = track.time
            bar.update(1)
            bar.set_postfix_str(f"{dimension}: {pipeline.kind.upper()}")
            raw = pipeline.predict_chips(apply_fill(track.chips, track.found, video))
            traces[dimension] = shift_predictions(track.time, raw, pipeline.label_shift)
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


def _extract_command(args) -> int:
    from .inference import extract_to_file, load_pipeline
    from .tensors import resolve_device

    extract_to_file(args.output, load_pipeline(args.model, resolve_device(args.device)), args.faces, args.batch_size)
    return 0


def _predict_command(args) -> int:
    import json

    from .dataset import TIME_CONVENTION
    from .evaluate import write_trace_csv
    from .io import atomic_path, claim_output
    from .modelfile import read_settings

    summary_path = args.output.with_suffix(".json")
    claim_output(summary_path)
    times, traces = predict_video(args.video, args.model, args.device, args.threads, not args.quiet, args.face)
    write_trace_csv(args.output, times, traces)
    models = [read_settings(path) for path in args.model]
    summary = {
        "video": str(args.video),
        "frames": len(times),
        "dimensions": list(traces),
        "models": [str(m.path) for m in models],
        "label_shifts": [m.settings.label_shift for m in models],
        "time_convention": TIME_CONVENTION,
    }
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.plot is not None:
        plot_traces(args.plot, times, traces, f"{args.video.name}: predicted {', '.join(traces)}")
    return 0
