"""Corpora of face videos with time-continuous valence/arousal labels.

Three layouts are read into the same :class:`Corpus`:

- AV+EC 2015 / RECOLA: ``recordings_video/{subject}.mp4`` and
  ``ratings_gold_standard/{valence,arousal}/{subject}.arff``, subjects
  ``train_N``, ``dev_N``, ``test_N`` (test labels may be absent);
- a subjects sheet ``subjects.tsv`` (columns subject, partition, video,
  valence, arousal; paths relative to the sheet; an empty label cell means
  no labels, allowed for test subjects only);
- Aff-Wild2 (the ABAW challenges' valence-arousal track), detected by its
  ``annotations/VA_Estimation_Challenge/`` folder: free-form subject names,
  labels by frame (:mod:`affectflow.data.affwild2` reads it; test subjects come from
  an optional list file).

:func:`open_corpus` is cheap (it lists files and checks that they exist: the
Snakefile calls it when it parses); :func:`check` decodes every video and
reads every label file. Labels are ARFF files read with liac-arff (the
official ones have a string attribute, which scipy.io.arff rejects), and are
matched to frames by timestamp, never by counting: the gold standard has a
row every 40 ms from t = 0 (7501 rows for 300 s against 7500 frames), and a
video that drops frames must not shift its labels. (Aff-Wild2's labels are
per decoded frame: ``Recording.labels_by`` says which, see affectflow.data.affwild2.)
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import affwild2
from ..contracts import (
    AFFWILD2_LABEL_DIR,
    AVEC_LABEL_DIR,
    AVEC_VIDEO_DIR,
    DEFAULT_FACE_RULE,
    DIMENSIONS,
    LABEL_TIME_COLUMN,
    LABEL_VALUE_COLUMN,
    PARTITIONS,
    SUBJECT_PATTERN,
    VIDEO_SUFFIXES,
)
from ..errors import AffectflowError, fail
from ..options import add_quiet

SHEET_NAME = "subjects.tsv"
SHEET_COLUMNS = ("subject", "partition", "video", "valence", "arousal")
# Labels and video may differ in length by this much (the gold standard's last row is at t = duration).
DURATION_TOLERANCE_S = 1.0


def natural_key(name: str) -> list:
    """Sort key that puts train_2 before train_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Recording:
    subject: str
    partition: str
    video: Path
    labels: dict[str, Path] = field(default_factory=dict)  # dimension -> label file; absent when unlabeled
    face: str = DEFAULT_FACE_RULE  # which person (contracts.FACE_RULES): Aff-Wild2's NAME_left / NAME_right
    labels_by: str = "time"  # contracts.LABELS_BY: "time" (ARFF rows at their times) or "frame" (Aff-Wild2)

    def frame_labels(self, dimension: str, frame_times: np.ndarray, edge: float | None = None) -> np.ndarray:
        """The ``dimension`` label at each frame time (float32 [T]): the gold standard interpolated
        (:func:`labels_for_frames`), or by frame, the frame's own line (affectflow.data.affwild2; no ``edge``)."""
        if dimension not in self.labels:
            raise fail(self.video, f"subject {self.subject} has no {dimension} labels")
        if self.labels_by == "frame":
            return affwild2.frame_labels(self, dimension, frame_times)
        times, values = read_labels(self.labels[dimension])
        return labels_for_frames(times, values, frame_times, edge=edge)


@dataclass
class Corpus:
    root: Path
    layout: str  # "avec2015", "sheet" or "affwild2"
    recordings: list[Recording]

    def subjects(self, partition: str | None = None) -> list[str]:
        """Subject names (natural order), all or of one partition."""
        if partition is not None and partition not in PARTITIONS:
            raise AffectflowError(f"unknown partition {partition!r} (expected one of {', '.join(PARTITIONS)})")
        return [r.subject for r in self.recordings if partition is None or r.partition == partition]

    def recording(self, subject: str) -> Recording:
        for recording in self.recordings:
            if recording.subject == subject:
                return recording
        raise fail(self.root, f"no subject {subject!r} in this corpus")


# --------------------------------------------------------------------------- opening


def open_corpus(root: str | os.PathLike, test_list: str | os.PathLike | None = None) -> Corpus:
    """Read a corpus's layout (cheap: lists files, checks they exist; decodes nothing).

    ``root`` is an AV+EC 2015 folder (the default where layouts overlap), a
    folder holding ``subjects.tsv``, the path of a subjects sheet itself, or an
    Aff-Wild2 folder; ``test_list`` names the Aff-Wild2 test subjects (a list
    file; the other layouts name their own).
    """
    root = Path(root)
    if not root.exists():
        raise fail(root, "corpus path does not exist")
    if root.is_file():
        corpus = _open_sheet(root)
    elif (root / SHEET_NAME).is_file():
        corpus = _open_sheet(root / SHEET_NAME)
    elif (root / AVEC_VIDEO_DIR).is_dir():
        corpus = _open_avec(root)
    elif affwild2.is_layout(root):
        return _open_affwild2(root, test_list)
    else:
        raise fail(
            root,
            f"not a corpus: no {AVEC_VIDEO_DIR}/ folder (AV+EC 2015 layout), no {SHEET_NAME} and no "
            f"{AFFWILD2_LABEL_DIR}/ folder (Aff-Wild2 layout)",
        )
    if test_list is not None:
        raise fail(test_list, f"a test list is for the Aff-Wild2 layout; {root} is in the {corpus.layout} layout")
    return corpus


def _sorted(recordings: list[Recording]) -> list[Recording]:
    order = {p: i for i, p in enumerate(PARTITIONS)}
    return sorted(recordings, key=lambda r: (order[r.partition], natural_key(r.subject)))


def _open_avec(root: Path) -> Corpus:
    video_dir = root / AVEC_VIDEO_DIR
    videos: dict[str, Path] = {}
    for path in sorted(video_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        match = SUBJECT_PATTERN.match(path.stem)
        if not match:
            raise fail(path, "video name is not a subject name train_N, dev_N or test_N")
        if path.stem in videos:
            raise fail(path, f"duplicate subject name {path.stem!r} (also {videos[path.stem].name})")
        videos[path.stem] = path
    if not videos:
        raise fail(video_dir, f"no videos ({', '.join(VIDEO_SUFFIXES)})")

    labels: dict[str, dict[str, Path]] = {subject: {} for subject in videos}
    label_root = root / AVEC_LABEL_DIR
    for dimension in DIMENSIONS:
        folder = label_root / dimension
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.arff")):
            if path.stem not in videos:
                raise fail(path, f"labels for subject {path.stem!r}, which has no video in {video_dir}")
            labels[path.stem][dimension] = path

    recordings = []
    for subject, video in videos.items():
        partition = SUBJECT_PATTERN.match(subject).group(1)
        for dimension in DIMENSIONS:
            if dimension not in labels[subject] and partition != "test":
                raise fail(label_root / dimension / f"{subject}.arff", "ARFF label file missing")
        recordings.append(Recording(subject, partition, video, labels[subject]))
    return Corpus(root=root, layout="avec2015", recordings=_sorted(recordings))


def _open_affwild2(root: Path, test_list) -> Corpus:
    recordings = [
        Recording(
            entry.subject,
            entry.partition,
            entry.video,
            {dimension: entry.labels for dimension in DIMENSIONS} if entry.labels else {},
            face=entry.face,
            labels_by="frame",
        )
        for entry in affwild2.scan(root, test_list)
    ]
    return Corpus(root=root, layout="affwild2", recordings=_sorted(recordings))


def _open_sheet(sheet: Path) -> Corpus:
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets may add a BOM
            reader = csv.DictReader(handle, delimiter="\t")
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise fail(sheet, f"unreadable subjects sheet ({error})") from None
    missing = [column for column in SHEET_COLUMNS if column not in header]
    if missing:
        raise fail(sheet, f"subjects sheet lacks column(s) {', '.join(missing)} (needs {', '.join(SHEET_COLUMNS)})")
    if not rows:
        raise fail(sheet, "subjects sheet has no subjects")
    base = sheet.parent
    recordings, seen = [], set()
    for line, row in enumerate(rows, start=2):
        subject = (row["subject"] or "").strip()
        partition = (row["partition"] or "").strip()
        where = f"line {line}"
        if not subject:
            raise fail(sheet, f"{where}: empty subject name")
        if subject in seen:
            raise fail(sheet, f"{where}: duplicate subject name {subject!r}")
        seen.add(subject)
        if partition not in PARTITIONS:
            raise fail(sheet, f"{where}: partition {partition!r} is not one of {', '.join(PARTITIONS)}")
        video_cell = (row["video"] or "").strip()
        if not video_cell:
            raise fail(sheet, f"{where}: no video for subject {subject}")
        video = base / video_cell
        if not video.is_file():
            raise fail(video, f"video of subject {subject} not found (named in {sheet}, {where})")
        labels = {}
        for dimension in DIMENSIONS:
            cell = (row[dimension] or "").strip()
            if not cell:
                if partition != "test":
                    raise fail(sheet, f"{where}: {partition} subject {subject} has no {dimension} label file")
                continue
            path = base / cell
            if not path.is_file():
                raise fail(path, f"ARFF label file missing (named in {sheet}, {where})")
            labels[dimension] = path
        recordings.append(Recording(subject, partition, video, labels))
    return Corpus(root=sheet, layout="sheet", recordings=_sorted(recordings))


# --------------------------------------------------------------------------- labels


def read_labels(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """An ARFF gold standard: (times float64 [N], values float32 [N]), validated.

    Needs numeric ``frameTime`` and ``GoldStandard`` attributes, at least one
    row, strictly increasing times and finite values in [-1, 1].
    """
    import arff

    path = Path(path)
    if not path.is_file():
        raise fail(path, "ARFF label file missing")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
        data = arff.loads(text)
    except UnicodeDecodeError:
        raise fail(path, "malformed ARFF: not UTF-8 text") from None
    except arff.ArffException as error:
        raise fail(path, f"malformed ARFF: {error}") from None
    names = [name for name, _ in data["attributes"]]
    columns = {}
    for wanted in (LABEL_TIME_COLUMN, LABEL_VALUE_COLUMN):
        if wanted not in names:
            raise fail(path, f"malformed ARFF: no {wanted!r} attribute (has {', '.join(names)})")
        kind = data["attributes"][names.index(wanted)][1]
        if not isinstance(kind, str) or kind.upper() not in ("NUMERIC", "REAL", "INTEGER"):
            raise fail(path, f"malformed ARFF: attribute {wanted!r} is not numeric")
        columns[wanted] = names.index(wanted)
    rows = data["data"]
    if not rows:
        raise fail(path, "ARFF has no data rows")
    try:
        times = np.array([row[columns[LABEL_TIME_COLUMN]] for row in rows], dtype=np.float64)
        values = np.array([row[columns[LABEL_VALUE_COLUMN]] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(path, "malformed ARFF: missing or non-numeric frameTime/GoldStandard values") from None
    if not np.all(np.isfinite(times)) or not np.all(np.isfinite(values)):
        raise fail(path, "malformed ARFF: missing or non-finite values")
    if np.any(np.diff(times) <= 0):
        bad = int(np.argmax(np.diff(times) <= 0)) + 1
        raise fail(path, f"frameTime not strictly increasing at data row {bad + 1} (t={times[bad]})")
    outside = np.abs(values) > 1.0
    if outside.any():
        first = int(np.argmax(outside))
        raise fail(
            path,
            f"{int(outside.sum())} label value(s) outside [-1, 1] (first at t={times[first]:g}: {values[first]:g})",
        )
    return times, values.astype(np.float32)


def labels_for_frames(
    label_times: np.ndarray, label_values: np.ndarray, frame_times: np.ndarray, edge: float | None = None
) -> np.ndarray:
    """The gold standard linearly interpolated at each frame time (float32 [T]).

    Every frame whose time lies inside the labelled span [first label time,
    last label time] gets a label, whatever the frame rate and whatever
    (non-grid) shift was applied to ``label_times``; a frame on a label's time
    gets exactly that label. Frames outside the span by at most ``edge``
    seconds take the nearest edge value, frames further out get NaN.
    ``edge`` defaults to half the median label step (0 for a single label),
    so the video's last frame, which ends rather than starts at the
    gold standard's last row, is still labelled.

    Matching by timestamp, never by counting, keeps labels aligned when a
    video drops frames.
    """
    label_times = np.asarray(label_times, np.float64)
    label_values = np.asarray(label_values, np.float64)
    frame_times = np.asarray(frame_times, np.float64)
    out = np.full(frame_times.shape, np.nan, np.float32)
    if len(label_times) == 0 or frame_times.size == 0:
        return out
    if edge is None:
        edge = 0.5 * float(np.median(np.diff(label_times))) if len(label_times) > 1 else 0.0
    # The slack keeps a frame exactly `edge` outside from falling to float rounding (the old +-20 ms bug).
    slack = 1e-9
    near = (frame_times >= label_times[0] - edge - slack) & (frame_times <= label_times[-1] + edge + slack)
    # np.interp holds the edge values outside [first, last], which is what the frames within `edge` take.
    out[near] = np.interp(frame_times[near], label_times, label_values)
    return out


# --------------------------------------------------------------------------- deep check


@dataclass
class SubjectReport:
    subject: str
    partition: str
    frames: int = 0
    fps: float = math.nan
    duration: float = math.nan
    label_rows: dict[str, int] = field(default_factory=dict)
    label_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    notes: list[str] = field(default_factory=list)  # information on the video, not problems (Aff-Wild2's timing)


def check_recording(recording: Recording, tolerance_s: float = DURATION_TOLERANCE_S) -> SubjectReport:
    """Decode the video and read the labels of one subject; collect every problem."""
    from ..faces import video as video_io

    report = SubjectReport(recording.subject, recording.partition)
    last_time = None
    times = []
    try:
        info = video_io.probe(recording.video)
        report.fps = info.fps
        for time, _ in video_io.iter_frames(recording.video, gray=True):
            report.frames += 1
            last_time = time
            times.append(time)
        report.duration = report.frames / info.fps
    except AffectflowError as error:
        report.problems.append(_split(error, recording.video))
        times = []  # no frame count to hold the labels against
    if recording.labels_by == "frame":  # each label line against its decoded frame (affectflow.data.affwild2)
        rows, ranges, problems, report.notes = affwild2.check_labels(recording, np.asarray(times), report.fps)
        report.label_rows.update(rows)
        report.label_range.update(ranges)
        report.problems.extend(problems)
        return report
    for dimension, path in recording.labels.items():
        try:
            times, values = read_labels(path)
        except AffectflowError as error:
            report.problems.append(_split(error, path))
            continue
        report.label_rows[dimension] = len(times)
        report.label_range[dimension] = (float(values.min()), float(values.max()))
        if report.frames:
            # The gold standard runs t = 0 .. duration; the last frame starts at duration - 1/fps.
            video_end = max(report.duration, (last_time or 0.0) + 1.0 / report.fps)
            gap = abs(float(times[-1]) - video_end)
            if gap > tolerance_s:
                report.problems.append(
                    (
                        str(path),
                        f"labels span {times[-1]:.2f} s but the video {recording.video.name} lasts "
                        f"{video_end:.2f} s (differ by {gap:.2f} s > {tolerance_s:g} s)",
                    )
                )
    return report


def _split(error: AffectflowError, default_path) -> tuple[str, str]:
    text = str(error)
    prefix = f"{default_path}: "
    return (str(default_path), text[len(prefix) :]) if text.startswith(prefix) else ("", text)


def check(corpus: Corpus, threads: int | None = None, progress: bool = False) -> list[SubjectReport]:
    """Deep check of every recording (decodes videos, reads labels), in corpus order."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    threads = max(1, threads or min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(threads) as pool:  # decoding releases the GIL
        reports = list(
            tqdm(
                pool.map(check_recording, corpus.recordings),
                total=len(corpus.recordings),
                desc="check",
                unit="subject",
                disable=not progress,
                file=sys.stderr,
            )
        )
    return reports


def format_table(reports: list[SubjectReport]) -> str:
    header = ["subject", "partition", "frames", "fps", "duration", "label rows", "label range", "problems"]
    rows = [header]
    for r in reports:
        dims = [d for d in DIMENSIONS if d in r.label_rows]
        rows.append(
            [
                r.subject,
                r.partition,
                str(r.frames),
                f"{r.fps:.2f}" if not math.isnan(r.fps) else "-",
                f"{r.duration:.2f}" if not math.isnan(r.duration) else "-",
                " ".join(f"{d[0]}:{r.label_rows[d]}" for d in dims) or "-",
                " ".join(f"{d[0]}:[{r.label_range[d][0]:.2f},{r.label_range[d][1]:.2f}]" for d in dims) or "-",
                "; ".join(problem for _, problem in r.problems) or "ok",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
