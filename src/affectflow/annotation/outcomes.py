"""What is done: a video's outcome (its JSON), the done check, the listing of a folder or sheet, and the
summary (docs/design.md, "Annotating videos"; affectflow.annotation.batches says how batches use them).

A video's outcome is its JSON in the annotations folder, ``{id}.json``: status ``ok`` (written
last, after its table and plot: affectflow.annotation.table.write_annotation) or ``failed`` with the
stage and the reason (no face, cannot be decoded, missing file). Both record the models' SHA-256
and the video's fingerprint (size and modification time, read when it was aligned). A video is
done when its outcome was made by the same models from the same video: a replaced or touched
video, or a change of models, makes it pending again; a plain rerun does not retry a failed one
(``--retry-failed`` does). The state of an archive lives in the outcomes alone.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..contracts import VIDEO_ID_PATTERN, VIDEO_SUFFIXES, video_id
from ..errors import fail

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
)
STATUSES = ("ok", "failed", "pending")


def list_videos(source: str | Path) -> dict[str, Path]:
    """{id: video} of a folder (its files with a video suffix, not recursive; id = the file's stem) or
    of a sheet (.tsv/.csv with a `video` column, paths relative to the sheet, and an optional `id`).

    Files are not opened (a missing one fails its own video later). Light on purpose: the workflow
    calls it when it parses.
    """
    source = Path(source)
    entries: list[tuple[str | None, Path]] = []
    if source.is_dir():
        entries = [
            (None, p)
            for p in sorted(source.iterdir())
            if not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
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


# ----------------------------------------------------------------------------- outcomes


def outcome_path(annotations: Path, video: str) -> Path:
    return Path(annotations) / f"{video}.json"


def read_outcome(annotations: Path, video: str) -> dict | None:
    """A video's outcome, or None when it has none (or an unreadable one: it is redone)."""
    try:
        outcome = json.loads(outcome_path(annotations, video).read_text())
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("status") in ("ok", "failed") else None


def video_fingerprint(path: Path | str) -> dict | None:
    """What identifies a video file's contents without reading it: its size and modification time
    (ns); None when it is not a file. A replaced, rewritten or touched video gets another one."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not Path(path).is_file():
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_failure(
    annotations: Path, video: str, source: Path | str, stage: str, error: str, models: list[str], fingerprint
) -> dict:
    from ..io import atomic_path

    outcome = {
        "id": video,
        "status": "failed",
        "video": str(source),
        "stage": stage,
        "error": error,
        "model_sha256": models,
        "video_fingerprint": fingerprint,
    }
    with atomic_path(outcome_path(annotations, video)) as tmp:
        tmp.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    return outcome


def is_done(outcome: dict | None, models: list[str], fingerprint: dict | None, retry_failed: bool = False) -> bool:
    """Done: annotated by these models (their weights' SHA-256) from this video (its fingerprint now), or
    failed on it with these models (unless retried). An outcome without a fingerprint is not done."""
    if outcome is None or outcome.get("video_fingerprint") != fingerprint or outcome.get("model_sha256") != models:
        return False
    return outcome["status"] == "ok" or not retry_failed


def model_hashes(model_files: Iterable[Path]) -> list[str]:
    """The models' weights' SHA-256, read from their headers (no torch)."""
    from ..modelfile import read_settings

    return [read_settings(path).settings.weights_sha256 for path in model_files]


# ----------------------------------------------------------------------------- the summary


def summarize(
    videos: dict[str, Path], annotations: Path, output: Path | None = None
) -> tuple[dict[str, int], list[dict]]:
    """One row per video, in the listing's order: its outcome, or pending. Reads only the outcomes,
    so it can run at any time, also while a run goes on. Returns (the counts per status, the rows)."""
    from ..io import atomic_path

    rows, dimensions = [], []
    for video, path in videos.items():
        outcome = read_outcome(annotations, video) or {"id": video, "status": "pending", "video": str(path)}
        dimensions += [d for d in outcome.get("dimensions", []) if d not in dimensions]
        rows.append(outcome)
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    if output is not None:
        columns = [*SUMMARY_COLUMNS, *(f"{d}_{s}" for d in dimensions for s in ("mean", "sd")), "stage", "error"]
        with atomic_path(output) as tmp, open(tmp, "w") as fh:
            fh.write("\t".join(columns) + "\n")
            for row in rows:
                fh.write("\t".join(tsv_cell(row.get(c, "")) for c in columns) + "\n")
    return counts, rows


def tsv_cell(value) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")
