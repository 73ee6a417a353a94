"""`affectflow annotate`: a per-frame valence/arousal table for a video's face file, and the folder summary.

One CSV row per decoded frame, in order, none skipped: ``frame``, ``time`` (the frame's own
timestamp, s), ``found`` (0/1), ``source`` (detected / tracked / lost: where the face came
from, affectflow.faces.SOURCES), ``score`` (the face detector's score where it detected the
face, empty elsewhere), then one column per model file's dimension. Lost frames are predicted
under the fill policy (affectflow.dataset.FILL_POLICY: the last found face, a blank chip before
the first one) and say so in ``source``. The face file is read in chunks and every model
predicts chunk by chunk (affectflow.inference.PipelineStream), so memory does not grow with
the video's length. A JSON summary (frames, duration, fps, found %, mean and sd per dimension,
wall times) goes beside the CSV; `affectflow annotate-summary` gathers the folder's summaries
and the failures into one TSV (docs/design.md, "Annotating videos").
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

CHUNK_FRAMES = 2048
CSV_COLUMNS = ("frame", "time", "found", "source", "score")
SUMMARY_COLUMNS = (
    "id",
    "status",
    "video",
    "frames",
    "duration_s",
    "fps",
    "found_percent",
    "align_s",
    "predict_s",
    "error",
)


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
    p.add_argument("-o", "--output", required=True, type=Path, help="ANNOTATIONS.csv")
    p.add_argument("--summary", type=Path, default=None, help="SUMMARY.json (default: beside the CSV)")
    p.add_argument("--plot", type=Path, default=None, help="a PNG of the traces")
    p.add_argument("--id", default=None, help="the video's id in the summary (default: the face file's name)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(handler=_annotate_command)

    p = subparsers.add_parser(
        "annotate-summary",
        help="gather per-video annotation summaries into one TSV",
        description="One row per video id: its JSON summary, or the error its log ends with.",
    )
    p.add_argument("--ids", required=True, nargs="+", help="every video id of the folder")
    p.add_argument("--annotations", required=True, type=Path, help="folder of {id}.json summaries")
    p.add_argument(
        "--logs",
        required=True,
        type=Path,
        nargs="+",
        help="folders of the per-video logs ({id}.log), searched in order for a failure's reason",
    )
    p.add_argument("--dimensions", nargs="*", default=None, help="dimension columns (default: from the summaries)")
    p.add_argument("-o", "--output", required=True, type=Path, help="summary.tsv")
    p.set_defaults(handler=_summary_command)


def list_videos(source: str | Path) -> dict[str, Path]:
    """{id: video} of a folder (its files with a video suffix, not recursive; id = the file's stem) or
    of a sheet (.tsv/.csv with a `video` column, paths relative to the sheet, and an optional `id`).

    Light on purpose: the workflow calls it when it parses.
    """
    import csv

    from .contracts import VIDEO_ID_PATTERN, VIDEO_SUFFIXES, video_id
    from .errors import fail

    source = Path(source)
    entries: list[tuple[str | None, Path]] = []
    if source.is_dir():
        entries = [
            (None, p)
            for p in sorted(source.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES
        ]
        if not entries:
            raise fail(source, f"no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    elif source.is_file():
        with open(source, newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if source.suffix.lower() == ".tsv" else ",")
            if "video" not in (reader.fieldnames or []):
                raise fail(source, f"a video sheet needs a 'video' column (has {reader.fieldnames})")
            for row in reader:
                if not (row.get("video") or "").strip():
                    continue
                path = Path(row["video"].strip())
                entries.append(
                    ((row.get("id") or "").strip() or None, path if path.is_absolute() else source.parent / path)
                )
        if not entries:
            raise fail(source, "the video sheet lists no video")
    else:
        raise fail(source, "no such folder or video sheet")
    videos: dict[str, Path] = {}
    for given, path in entries:
        name = given or video_id(str(path))
        if not VIDEO_ID_PATTERN.match(name):
            raise fail(source, f"video id {name!r} ({path}): use letters, digits, '.', '_' and '-'")
        if name in videos:
            raise fail(source, f"two videos have the id {name!r}: {videos[name]} and {path}")
        videos[name] = path
    return videos


def annotate_faces(
    faces_path: Path, model_files: list[Path], output: Path, device_name: str = "auto", progress: bool = True
) -> dict:
    """Write the annotations CSV of a face file; returns the summary (without wall times of other stages)."""
    from tqdm import tqdm

    from .dataset import ChunkFill
    from .errors import fail
    from .faces import SOURCES, face_chunks
    from .inference import PipelineStream, load_pipeline
    from .io import atomic_path
    from .trainer import resolve_device

    started = time.perf_counter()
    device = resolve_device(device_name)
    pipelines = [load_pipeline(path, device) for path in model_files]
    dimensions = [p.dimension for p in pipelines]
    if len(set(dimensions)) != len(dimensions):
        raise fail(model_files[0], f"two model files predict the same dimension ({', '.join(dimensions)})")
    streams = [PipelineStream(p) for p in pipelines]
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
                columns = [_take(r, len(times)) for r in ready]
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
    frames = counts["frames"]
    fps = float(attrs.get("fps") or 0.0)
    summary = {
        "frames": frames,
        "duration_s": round(frames / fps if fps else float(span[1] - span[0]), 3),
        "fps": round(fps, 3),
        "found_percent": round(100.0 * counts["found"] / frames, 2),
        "align_s": round(float(attrs.get("align_seconds", math.nan)), 2),
        "predict_s": round(time.perf_counter() - started, 2),
        "video": str(attrs.get("source", "")),
        "dimensions": dimensions,
        "models": [str(p.path) for p in pipelines],
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


def _annotate_command(args) -> int:
    from .io import atomic_path

    summary = annotate_faces(args.faces, args.model, args.output, args.device)
    summary = {"id": args.id or args.faces.stem, "status": "ok", **summary}
    path = args.summary or args.output.with_suffix(".json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.plot is not None:
        _plot(args.output, args.plot, summary)
    print(
        f"{args.output}: {summary['frames']} frames, found {summary['found_percent']} %, "
        + ", ".join(f"{d} mean {summary[f'{d}_mean']:.3f} sd {summary[f'{d}_sd']:.3f}" for d in summary["dimensions"])
    )
    return 0


def _plot(csv_path: Path, png: Path, summary: dict) -> None:
    import csv

    from .predict import plot_traces

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


def failure_reason(video_id: str, log_dirs: list[Path]) -> str:
    """The last `affectflow ...: error: ...` line of the video's logs (the CLI's one-line error)."""
    for folder in log_dirs:
        log = Path(folder) / f"{video_id}.log"
        if log.is_file():
            lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if "error:" in line]
            if lines:
                return lines[-1]
    return "no output and no error in its logs (not run yet, or interrupted)"


def write_summary(
    ids: list[str], annotations: Path, log_dirs: list[Path], output: Path, dimensions: list[str] | None = None
) -> list[dict]:
    from .io import atomic_path

    rows = []
    for video_id in ids:
        path = Path(annotations) / f"{video_id}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
        else:
            rows.append({"id": video_id, "status": "failed", "error": failure_reason(video_id, log_dirs)})
    if dimensions is None:
        dimensions = []
        for row in rows:
            dimensions += [d for d in row.get("dimensions", []) if d not in dimensions]
    columns = list(SUMMARY_COLUMNS[:-1]) + [f"{d}_{s}" for d in dimensions for s in ("mean", "sd")] + ["error"]
    with atomic_path(output) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(columns) + "\n")
        for row in rows:
            fh.write("\t".join(_cell(row.get(c, "")) for c in columns) + "\n")
    return rows


def _cell(value) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


def _summary_command(args) -> int:
    rows = write_summary(args.ids, args.annotations, args.logs, args.output, args.dimensions)
    failed = [r for r in rows if r["status"] != "ok"]
    print(
        f"{args.output}: {len(rows) - len(failed)} videos annotated, {len(failed)} failed"
        + "".join(f"\n  {r['id']}: {r['error']}" for r in failed)
    )
    return 0
