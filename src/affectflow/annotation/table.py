"""`affectflow annotate`: a per-frame valence/arousal table for a video's face file.

One CSV row per decoded frame, in order, none skipped: ``frame``, ``time`` (the frame's own
timestamp, s; a model's value there is its estimate of the annotation at that time,
affectflow.data.labels.TIME_CONVENTION, as in `affectflow predict`), ``found`` (0/1),
``source`` (detected / tracked / lost: where the face came from, affectflow.faces.facefile.SOURCES),
``score`` (the face detector's score where it detected the face, empty elsewhere), then one
column per model file's dimension. Lost frames are predicted under the fill policy
(affectflow.data.fill.FILL_POLICY: the last found face, a blank chip before the first one) and
say so in ``source``. The face file is read in chunks and every model predicts chunk by chunk
(affectflow.inference.pipeline.PipelineStream), so memory does not grow with the video's length. A
JSON summary (frames, duration, fps, found %, mean and sd per dimension, label shifts, the time
convention, wall times) goes beside the CSV. affectflow.annotation.batches annotates a whole folder in batches
(docs/design.md, "Annotating videos").
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..io import OutputPath
from ..options import add_device, add_quiet

CHUNK_FRAMES = 2048
CSV_COLUMNS = ("frame", "time", "found", "source", "score")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "annotate",
        help="per-frame valence/arousal table of one aligned video",
        description="Write ANNOTATIONS.csv (frame, time, found, source, score, one column "
        "per model) for every frame of a face file, and a JSON summary.",
    )
    p.add_argument("--faces", required=True, type=Path, help="the video's face file (affectflow align)")
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        action="append",
        help="model file, one per dimension (repeat: e.g. valence and arousal)",
    )
    p.add_argument("-o", "--output", required=True, type=OutputPath, help="ANNOTATIONS.csv")
    p.add_argument("--summary", type=OutputPath, default=None, help="SUMMARY.json (default: beside the CSV)")
    p.add_argument("--plot", type=OutputPath, default=None, help="a PNG of the traces")
    p.add_argument("--id", default=None, help="the video's id in the summary (default: the face file's name)")
    add_device(p)
    add_quiet(p)
    p.set_defaults(handler=_annotate_command)


def load_models(model_files: list[Path], device_name: str = "auto") -> list:
    """The model files of one annotation, loaded once (a batch job reuses them for every video)."""
    from ..errors import fail
    from ..inference.pipeline import load_pipeline
    from ..nets.tensors import resolve_device

    device = resolve_device(device_name)
    pipelines = [load_pipeline(path, device) for path in model_files]
    dimensions = [p.dimension for p in pipelines]
    if len(set(dimensions)) != len(dimensions):
        raise fail(model_files[0], f"two model files predict the same dimension ({', '.join(dimensions)})")
    return pipelines


def annotate_faces(faces_path: Path, pipelines: list, output: Path, progress: bool = True) -> dict:
    """Write the annotations CSV of a face file with loaded models (load_models); returns the summary
    (without wall times of other stages)."""
    from tqdm import tqdm

    from ..data.fill import ChunkFill
    from ..data.labels import ShiftedStream
    from ..errors import fail
    from ..faces.facefile import SOURCES, face_chunks
    from ..inference.pipeline import PipelineStream
    from ..io import atomic_path

    started = time.perf_counter()
    dimensions = [p.dimension for p in pipelines]
    streams = [PipelineStream(p) for p in pipelines]
    placers = [ShiftedStream(p.label_shift) for p in pipelines]  # the one time convention (labels.TIME_CONVENTION)
    fill = ChunkFill()
    pending: list[tuple] = []  # frames whose predictions are not all known yet (transductive models)
    ready: list[list[np.ndarray]] = [[] for _ in streams]
    sums = np.zeros(len(streams)), np.zeros(len(streams))
    counts = {"frames": 0, "found": 0}
    span = None  # (first, last) frame time
    with (
        face_chunks(faces_path, CHUNK_FRAMES, ("time", "chips", "found", "source", "score")) as (attrs, total, chunks),
        atomic_path(output) as tmp,
        open(tmp, "w") as fh,
        tqdm(total=total, unit="frame", desc=f"annotate {Path(faces_path).stem}", disable=not progress) as bar,
    ):
        if attrs.get("face_source_derived"):
            raise fail(faces_path, "face file lacks source and score (aligned by an older affectflow): align again")
        fh.write(",".join(CSV_COLUMNS + tuple(dimensions)) + "\n")

        def flush(final: bool = False) -> None:
            while pending:
                available = min(sum(len(a) for a in r) for r in ready)
                times, found, source, score, first_frame = pending[0]
                if available < len(times):
                    if final:
                        raise fail(faces_path, "a model gave fewer predictions than frames")
                    return
                pending.pop(0)
                columns = [placers[k](times, _take(r, len(times))) for k, r in enumerate(ready)]
                for k, values in enumerate(columns):
                    sums[0][k] += float(np.sum(values, dtype=np.float64))
                    sums[1][k] += float(np.sum(np.square(values, dtype=np.float64)))
                _write_rows(fh, first_frame, times, found, source, score, columns, SOURCES)

        for chunk in chunks:
            times, found = chunk["time"].astype(np.float64), chunk["found"].astype(bool)
            filled = fill(chunk["chips"], found)
            for k, stream in enumerate(streams):
                ready[k].append(stream.push(filled, where=faces_path))
            pending.append((times, found, chunk["source"], chunk["score"].astype(np.float64), counts["frames"]))
            counts["frames"] += len(times)
            counts["found"] += int(found.sum())
            span = (times[0] if span is None else span[0], times[-1])
            flush()
            bar.update(len(times))
        for k, stream in enumerate(streams):
            ready[k].append(stream.finish())
        flush(final=True)
        # inside the atomic write: a table that is no result never appears under its name
        if counts["frames"] == 0:
            raise fail(faces_path, "face file has no frames")
        if counts["found"] == 0:
            raise fail(faces_path, f"no face found in any of its {counts['frames']} frames")
    return _summary(attrs, counts, span, sums, pipelines, time.perf_counter() - started)


def _summary(attrs, counts: dict, span: tuple, sums: tuple, pipelines: list, seconds: float) -> dict:
    """The annotation's JSON summary from the face file's attributes and the running counts and sums."""
    from ..data.labels import TIME_CONVENTION

    frames = counts["frames"]
    fps = float(attrs.get("fps") or 0.0)
    dimensions = [p.dimension for p in pipelines]
    summary = {
        "frames": frames,
        "duration_s": round(frames / fps if fps else float(span[1] - span[0]), 3),
        "fps": round(fps, 3),
        "found_percent": round(100.0 * counts["found"] / frames, 2),
        "align_s": round(float(attrs.get("align_seconds", math.nan)), 2),
        "predict_s": round(seconds, 2),
        "video": str(attrs.get("source", "")),
        "dimensions": dimensions,
        "models": [str(p.path) for p in pipelines],
        "label_shifts": [p.label_shift for p in pipelines],
        "time_convention": TIME_CONVENTION,
    }
    for k, dimension in enumerate(dimensions):
        mean = sums[0][k] / frames
        summary[f"{dimension}_mean"] = round(mean, 6)
        summary[f"{dimension}_sd"] = round(math.sqrt(max(sums[1][k] / frames - mean**2, 0.0)), 6)
    return summary


def _take(parts: list[np.ndarray], count: int) -> np.ndarray:
    """The first `count` values of a list of arrays, removed from it."""
    out, taken = [], 0
    while taken < count:
        head = parts[0]
        need = count - taken
        out.append(head[:need])
        taken += min(len(head), need)
        if len(head) > need:
            parts[0] = head[need:]
        else:
            parts.pop(0)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _write_rows(fh, first_frame: int, times, found, source, score, columns, names) -> None:
    for i in range(len(times)):
        detected_score = "" if not np.isfinite(score[i]) else f"{score[i]:.4f}"
        values = ",".join(f"{float(c[i]):.6f}" for c in columns)
        fh.write(
            f"{first_frame + i},{times[i]:.6f},{int(found[i])},{names[int(source[i])]},{detected_score},{values}\n"
        )


def write_annotation(
    faces_path: Path,
    pipelines: list,
    table: Path,
    summary_path: Path,
    plot: Path | None,
    video_id: str,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """A video's table, then its plot, then its JSON summary (status ok): the summary is written last,
    so that its presence means the video is done (affectflow.annotation.outcomes reads it so)."""
    from ..io import atomic_path

    summary = {
        "id": video_id,
        "status": "ok",
        **annotate_faces(faces_path, pipelines, table, progress),
        **(extra or {}),
    }
    if plot is not None:
        _plot(table, plot, summary)
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _annotate_command(args) -> int:
    from ..io import claim_output

    summary_path = args.summary or args.output.with_suffix(".json")
    if args.summary is None:
        claim_output(summary_path)
    pipelines = load_models(args.model, args.device)
    summary = write_annotation(
        args.faces, pipelines, args.output, summary_path, args.plot, args.id or args.faces.stem, not args.quiet
    )
    print(
        f"{args.output}: {summary['frames']} frames, found {summary['found_percent']} %, "
        + ", ".join(f"{d} mean {summary[f'{d}_mean']:.3f} sd {summary[f'{d}_sd']:.3f}" for d in summary["dimensions"])
    )
    return 0


def _plot(csv_path: Path, png: Path, summary: dict) -> None:
    import csv

    from ..inference.traces import plot_traces

    times, traces = [], {d: [] for d in summary["dimensions"]}
    with open(csv_path) as fh:
        for row in csv.DictReader(fh):
            times.append(float(row["time"]))
            for d in traces:
                traces[d].append(float(row[d]))
    plot_traces(
        png,
        np.asarray(times),
        {d: np.asarray(v) for d, v in traces.items()},
        f"{summary['id']}: {', '.join(traces)} ({summary['found_percent']} % of frames with a face)",
    )
