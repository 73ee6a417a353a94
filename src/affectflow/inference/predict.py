"""`affectflow predict VIDEO --model FILE`: the trained models on a new video.

predict: the video is aligned as the CNN's training faces were (the model file's alignment
settings), face-lost frames are filled (the fill policy), and the model file's pipeline
(affectflow.inference.pipeline: CNN, RNN over windows) gives a trace; the label shift is applied
at the video's frame times. A CSV (time, <dimension>...) and optionally a PNG plot.
Several --model files (valence and arousal) give one column each. A model file is
self-contained: an RNN's embeds its CNN, so a copied model file predicts on its own.
"""

from __future__ import annotations

from pathlib import Path

from ..contracts import DEFAULT_FACE_RULE, FACE_RULES
from ..io import OutputPath
from ..options import add_device, add_quiet, add_threads


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
    add_device(p)
    add_threads(p, "alignment threads (default: all available)")
    p.add_argument(
        "--face",
        choices=FACE_RULES,
        default=DEFAULT_FACE_RULE,
        help="which face of several: the detector's best, or the leftmost / rightmost (see `affectflow align`)",
    )
    add_quiet(p)
    p.set_defaults(handler=_predict_command)


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

    from ..data.fill import apply_fill
    from ..data.labels import shift_predictions
    from ..errors import fail
    from ..faces.align import align_video
    from ..faces.settings import AlignSettings
    from ..nets.tensors import resolve_device
    from .pipeline import load_pipeline

    device = resolve_device(device_name)
    pipelines = [load_pipeline(path, device) for path in model_files]
    tracks: dict = {}  # one alignment per distinct AlignSettings
    traces: dict[str, object] = {}
    times = None
    with tqdm(total=2 * len(pipelines), desc="predict", unit="stage", disable=not progress) as bar:
        for pipeline in pipelines:
            dimension = pipeline.dimension
            if dimension in traces:
                raise fail(pipeline.path, f"two models predict {dimension}")
            bar.set_postfix_str(f"{dimension}: align")
            settings = pipeline.align_settings(AlignSettings(face=face))
            if settings not in tracks:
                tracks[settings] = align_video(video, settings, threads=threads, progress=progress)
            track = tracks[settings]
            times = track.time
            bar.update(1)
            bar.set_postfix_str(f"{dimension}: {pipeline.kind.upper()}")
            raw = pipeline.predict_chips(apply_fill(track.chips, track.found, video))
            traces[dimension] = shift_predictions(track.time, raw, pipeline.label_shift)
            bar.update(1)
    return times, traces


def _predict_command(args) -> int:
    import json

    from ..data.labels import TIME_CONVENTION
    from ..io import atomic_path, claim_output
    from ..modelfile import read_settings
    from .traces import plot_traces, write_trace_csv

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
