"""What is done: a video's outcome (its JSON), the done check, the listing of a folder or sheet, and the
summary (docs/design.md, "Annotating videos"; affectflow.annotation.batches says how batches use them).

A video's outcome is its JSON in the annotations folder, ``{id}.json``: status ``ok`` (written
last, after its table and plot: affectflow.annotation.table.write_annotation) or ``failed`` with the
stage and the reason (no face, cannot be decoded, missing file). Both record the models' SHA-256,
the video's fingerprint (size and modification time, read when it was aligned) and the face rule
it was aligned with. A video is done when its outcome was made by the same models from the same
video with the same face rule: a replaced or touched video, a change of models or of the video's
``face`` in the sheet makes it pending again; a plain rerun does not retry a failed one
(``--retry-failed`` does). The state of an archive lives in the outcomes alone.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..contracts import DEFAULT_FACE_RULE, FACE_RULES, VIDEO_ID_PATTERN, VIDEO_SUFFIXES, video_id
from ..errors import fail

SUMMARY_COLUMNS = (
    "id",
    "status",
    "video",
    "face_rule",
    "frames",
    "duration_s",
    "fps",
    "found_percent",
    "align_s",
    "predict_s",
)
STATUSES = ("ok", "failed", "pending")


def list_videos(source: str | Path) -> dict[str, Path]:
    """{id: video} of a folder or sheet (see :func:`read_listing`)."""
    return read_listing(source)[0]


def read_listing(source: str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """({id: video}, {id: face rule}) of a folder (its files with a video suffix, not recursive; id = the
    file's stem) or of a sheet (.tsv/.csv with a `video` column, paths relative to the sheet, an optional
    `id` and an optional `face`: best, left or right, which person `align --face` aligns; empty: best).

    Files are not opened (a missing one fails its own video later). Light on purpose: the workflow
    calls it when it parses.
    """
    source = Path(source)
    entries: list[tuple[str | None, Path, str]] = []
    if source.is_dir():
        entries = [
            (None, p, DEFAULT_FACE_RULE)
            for p in sorted(source.iterdir())
            if not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
        ]
        if not entries:
            raise fail(source, f"no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    elif source.is_file():
        entries = _sheet_entries(source)
    else:
        raise fail(source, "no such folder or video sheet")
    videos: dict[str, Path] = {}
    faces: dict[str, str] = {}
    for given, path, face in entries:
        name = given or video_id(str(path))
        if not VIDEO_ID_PATTERN.match(name):
            raise fail(source, f"video id {name!r} ({path}): use letters, digits, '.', '_' and '-'")
        if name in videos:
            raise fail(source, f"two videos have the id {name!r}: {videos[name]} and {path}")
        videos[name], faces[name] = path, face
    return videos, faces


def _sheet_entries(sheet: Path) -> list[tuple[str | None, Path, str]]:
    """(id or None, video, face rule) of each row of a sheet that names a video."""
    try:
        return _sheet_rows(sheet)
    except UnicodeDecodeError as error:
        raise fail(sheet, f"the video sheet is not UTF-8 text (byte {error.start})") from None
    except csv.Error as error:
        raise fail(sheet, f"the video sheet is not a table ({error})") from None


def _sheet_rows(sheet: Path) -> list[tuple[str | None, Path, str]]:
    entries = []
    with open(sheet, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if sheet.suffix.lower() == ".tsv" else ",")
        if "video" not in (reader.fieldnames or []):
            raise fail(sheet, f"a video sheet needs a 'video' column (has {reader.fieldnames})")
        for row in reader:
            if not (row.get("video") or "").strip():
                continue
            face = (row.get("face") or "").strip() or DEFAULT_FACE_RULE
            if face not in FACE_RULES:
                raise fail(
                    sheet,
                    f"row {reader.line_num}: face {face[:80]!r} is not a face rule "
                    f"({', '.join(FACE_RULES)}; empty: {DEFAULT_FACE_RULE})",
                )
            path = Path(row["video"].strip())
            given = (row.get("id") or "").strip() or None
            entries.append((given, path if path.is_absolute() else sheet.parent / path, face))
    if not entries:
        raise fail(sheet, "the video sheet lists no video")
    return entries


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
    annotations: Path,
    video: str,
    source: Path | str,
    stage: str,
    error: str,
    models: list[str],
    fingerprint,
    face: str = DEFAULT_FACE_RULE,
) -> dict:
    from ..io import atomic_path

    outcome = {
        "id": video,
        "status": "failed",
        "video": str(source),
        "face_rule": face,
        "stage": stage,
        "error": error,
        "model_sha256": models,
        "video_fingerprint": fingerprint,
    }
    with atomic_path(outcome_path(annotations, video)) as tmp:
        tmp.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    return outcome


def is_done(
    outcome: dict | None,
    models: list[str],
    fingerprint: dict | None,
    retry_failed: bool = False,
    face: str = DEFAULT_FACE_RULE,
) -> bool:
    """Done: annotated by these models (their weights' SHA-256) from this video (its fingerprint now) with
    this face rule, or failed on it so (unless retried). An outcome without a fingerprint is not done; one
    without a face rule was made before the sheet's `face` column existed, with best."""
    if outcome is None or outcome.get("video_fingerprint") != fingerprint or outcome.get("model_sha256") != models:
        return False
    if outcome.get("face_rule", DEFAULT_FACE_RULE) != face:
        return False  # another person of the video: another annotation
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
