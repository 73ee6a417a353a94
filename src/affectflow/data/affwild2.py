"""The Aff-Wild2 layout (the ABAW challenges' valence-arousal track): its recordings, labels by frame, checks.

The layout as the ABAW releases ship it (the names are in affectflow.contracts):

- videos ``NAME.mp4`` or ``NAME.avi`` anywhere under ``videos/`` (``batch1/``, ``batch2/`` or deeper; the
  whole corpus folder when it has no ``videos/``, which keeps a release's folders of cropped frames, millions
  of files, out of the walk);
- ``annotations/VA_Estimation_Challenge/Train_Set/SUBJECT.txt`` (partition train) and ``.../Validation_Set/``
  (dev): a header line ``valence,arousal``, then line k (from 0) labels decoded frame k, values in [-1, 1]
  or ``-5`` where that frame has no valid annotation; a file may have a few lines more or fewer than the
  video has frames (``corpus check`` allows AFFWILD2_FRAME_TOLERANCE);
- ``NAME_left.txt`` / ``NAME_right.txt`` annotate the left / right person of video ``NAME`` (the
  recording's ``face``); any other ``SUBJECT.txt`` annotates video ``SUBJECT`` (face ``best``);
- the test set: an optional list file of subject names (one a line, ``#`` starts a comment), no labels.

Subjects are the label files' names (and the test list's), free-form but file-name safe
(contracts.SUBJECT_NAME_PATTERN); a subject's partition is its folder's, never read off its name.

**Labels by decoded frame, never interpolated** (:func:`decoded_lines`, the one statement of the rule). Line k
(from 0) labels decoded frame k, whatever that frame's timestamp: a video may start late (an edit list, a B-frame
delay, a cut clip) or vary its frame rate, and the release still labels it line by line. Under a label shift of s
seconds, decoded frame k takes the line of the decoded frame nearest to t_k + s (t: the decoded frames' own times),
so s = 0 is exactly line k and a shift counts whole frames at the video's own local rate; past either end of the
video the nearest "frame" is counted on at the first or last frame interval, and lands outside it. There is no label
(NaN) where that line is ``-5``, lies past the end of a short file, before line 0, or past the last decoded frame:
extra lines of a long file label frames that do not exist and are ignored. A ``-5`` span is never bridged, so
nothing trains on it and nothing is scored on it. ``corpus check`` reports a start offset or a varying frame rate as
information, not as a problem.

This module does not import affectflow.data.corpus (which dispatches to it): :func:`scan` hands it plain
entries, and the other functions read a recording by its attributes (subject, video, labels).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..contracts import (
    AFFWILD2_FRAME_TOLERANCE,
    AFFWILD2_HEADER,
    AFFWILD2_LABEL_DIR,
    AFFWILD2_NO_LABEL,
    AFFWILD2_SETS,
    AFFWILD2_VIDEO_DIR,
    DIMENSIONS,
    SUBJECT_NAME_PATTERN,
    VIDEO_SUFFIXES,
)
from ..errors import AffectflowError, fail
from ..faces.video import TRUNCATION_TOLERANCE_FRAMES

# corpus check notes a first frame this late (seconds), and per-frame rates spread wider than this fraction
NOTE_START_S = 1e-3
NOTE_RATE_SPREAD = 0.01
TIE_S = 1e-9

LABEL_SUFFIX = ".txt"
PERSON_SUFFIXES = {"_left": "left", "_right": "right"}


class Entry(NamedTuple):
    """One recording of the layout, as :func:`scan` finds it (affectflow.data.corpus makes it a Recording)."""

    subject: str
    partition: str
    video: Path
    labels: Path | None  # the label file (both dimensions); None for a test subject
    face: str  # contracts.FACE_RULES: "best", "left" or "right"


def is_layout(root: Path) -> bool:
    return (Path(root) / AFFWILD2_LABEL_DIR).is_dir()


def video_name(subject: str) -> tuple[str, str]:
    """(video name, face) of a subject: ``NAME_left`` -> (NAME, left), ``NAME_right`` -> (NAME, right),
    anything else -> (itself, best)."""
    for suffix, face in PERSON_SUFFIXES.items():
        if subject.endswith(suffix) and len(subject) > len(suffix):
            return subject[: -len(suffix)], face
    return subject, "best"


def _check_name(subject: str, where: Path) -> None:
    if not SUBJECT_NAME_PATTERN.match(subject):
        raise fail(
            where,
            f"subject name {subject!r} is not file-name safe (letters, digits, '.', '_', '-'; starting with a "
            f"letter or digit): the workflow names files and jobs after it",
        )


def index_videos(root: Path) -> tuple[Path, dict[str, list[Path]]]:
    """Every video under ``root/videos`` (or ``root`` without one), walked once: (folder, {stem: [paths]}).
    Hidden files and folders are skipped; symbolic links are followed (each real folder once)."""
    folder = root / AFFWILD2_VIDEO_DIR if (root / AFFWILD2_VIDEO_DIR).is_dir() else root
    found: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path.suffix.lower() in VIDEO_SUFFIXES:
                found.setdefault(path.stem, []).append(path)
    return folder, found


def read_test_list(path: str | os.PathLike) -> list[str]:
    """The subject names of a test list: one a line; blank lines and ``#`` comments skipped; a trailing
    ``.txt`` or video suffix dropped."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "test list not found")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise fail(path, f"unreadable test list ({error})") from None
    names: list[str] = []
    for number, line in enumerate(lines, start=1):
        name = line.split("#", 1)[0].strip()
        for suffix in (LABEL_SUFFIX, *VIDEO_SUFFIXES):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        if not name:
            continue
        _check_name(name, path)
        if name in names:
            raise fail(path, f"line {number}: subject {name!r} is listed twice")
        names.append(name)
    if not names:
        raise fail(path, "test list names no subject")
    return names


def scan(root: Path, test_list: str | os.PathLike | None = None) -> list[Entry]:
    """The recordings of an Aff-Wild2 folder (cheap: lists files, reads the test list, decodes nothing)."""
    root = Path(root)
    label_root = root / AFFWILD2_LABEL_DIR
    labelled: dict[str, tuple[str, Path]] = {}
    for partition, folder_name in AFFWILD2_SETS.items():
        folder = label_root / folder_name
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() != LABEL_SUFFIX or not path.is_file():
                continue
            _check_name(path.stem, path)
            if path.stem in labelled:
                raise fail(path, f"subject {path.stem!r} is labelled twice (also {labelled[path.stem][1]})")
            labelled[path.stem] = (partition, path)
    tests = read_test_list(test_list) if test_list is not None else []
    for subject in tests:
        if subject in labelled:
            raise fail(test_list, f"test subject {subject!r} also has labels ({labelled[subject][1]})")
    if not labelled and not tests:
        raise fail(label_root, f"no label files (SUBJECT{LABEL_SUFFIX}) in {' or '.join(AFFWILD2_SETS.values())}")

    folder, videos = index_videos(root)
    wanted = [(s, p, path) for s, (p, path) in labelled.items()] + [(s, "test", None) for s in tests]
    entries = []
    for subject, partition, labels in wanted:
        name, face = video_name(subject)
        candidates = videos.get(name, [])
        if not candidates:
            raise fail(
                labels or test_list, f"no video {name!r} ({', '.join(VIDEO_SUFFIXES)}) under {folder} for {subject}"
            )
        if len(candidates) > 1:
            raise fail(candidates[0], f"two videos named {name!r}: {candidates[0]} and {candidates[1]}")
        entries.append(Entry(subject, partition, candidates[0], labels, face))
    return entries


# --------------------------------------------------------------------------- labels by frame


def read_label_file(path: str | os.PathLike) -> np.ndarray:
    """A label file's lines after the header: float32 [N, 2] (valence, arousal), NaN where ``-5``.

    Needs the header ``valence,arousal`` and two numbers a line, each in [-1, 1] or exactly -5 (trailing
    blank lines are ignored; a blank line inside would shift every later frame, so it is an error).
    """
    path = Path(path)
    if not path.is_file():
        raise fail(path, "label file missing")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise fail(path, f"unreadable label file ({error})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or lines[0].replace(" ", "").strip().lower() != AFFWILD2_HEADER:
        found = repr(lines[0].strip()) if lines else "an empty file"
        raise fail(path, f"line 1: expected the header {AFFWILD2_HEADER!r}, found {found}")
    values = np.empty((len(lines) - 1, 2), np.float64)
    for k, line in enumerate(lines[1:]):
        cells = line.split(",")
        try:
            if len(cells) != 2:
                raise ValueError
            values[k] = (_strict_number(cells[0]), _strict_number(cells[1]))
        except ValueError:
            raise fail(path, f"line {k + 2}: expected two numbers {AFFWILD2_HEADER}, found {line.strip()!r}") from None
    missing = values == AFFWILD2_NO_LABEL
    bad = ~missing & ~(np.abs(values) <= 1.0)  # NaN and inf too
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise fail(
            path,
            f"{int(bad.sum())} value(s) neither in [-1, 1] nor {AFFWILD2_NO_LABEL:g} (first: line {row + 2}, "
            f"{DIMENSIONS[column]} {values[row, column]:g})",
        )
    values[missing] = np.nan
    return values.astype(np.float32)


NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*\Z")


def _strict_number(text: str) -> float:
    """A decimal number as label files write it; Python's float() also takes '0_1', 'nan' and 'inf'."""
    if not NUMBER.match(text):
        raise ValueError(text)
    return float(text)


def decoded_lines(frame_times: np.ndarray, shift: float = 0.0, fps: float = 0.0) -> np.ndarray:
    """The label line of every decoded frame under ``shift`` (int64 [T]): THE rule of this layout.

    ``frame_times`` are the times of every decoded frame of the video, in decoding order (a face or feature
    file's ``time``); the line of frame k is k at shift 0, else the index of the decoded frame nearest to
    t_k + shift (ties to the later one). Beyond the first or last frame the count goes on at the first or last
    frame interval (``1 / fps`` for a one-frame video), giving lines below 0 or at or past T: no frame, no label.
    """
    n = len(frame_times)
    if shift == 0.0 or n == 0:
        return np.arange(n, dtype=np.int64)
    t = increasing_times(frame_times)
    if n == 1 and fps <= 0:
        raise ValueError("a one-frame video needs its frame rate to count a shift in frames")
    target = t + float(shift)
    first_step = t[1] - t[0] if n > 1 else 1.0 / fps
    last_step = t[-1] - t[-2] if n > 1 else 1.0 / fps
    lines = np.empty(n, np.int64)
    if n > 1:
        right = np.clip(np.searchsorted(t, target, side="left"), 1, n - 1)
        left = right - 1
        # ties (to within float rounding, 1 ns) go to the later frame, as round() half up did
        lines[:] = np.where(target - t[left] < t[right] - target - TIE_S, left, right)
    before, after = target < t[0], target > t[-1]
    lines[before] = np.floor((target[before] - t[0]) / first_step + 0.5).astype(np.int64)
    lines[after] = n - 1 + np.floor((target[after] - t[-1]) / last_step + 0.5).astype(np.int64)
    return lines


def increasing_times(frame_times: np.ndarray) -> np.ndarray:
    """Decoded frame times made strictly increasing: a frame whose time does not follow its predecessor's (the
    frames a decoder flushes at the end of an AVI with B-frames repeat the last timestamp) is placed one
    previous frame interval after it."""
    t = np.array(frame_times, np.float64)
    if len(t) < 2 or (np.diff(t) > 0).all():
        return t
    for k in range(1, len(t)):  # rare: only videos whose decoder repeats a timestamp get here
        if t[k] <= t[k - 1]:
            t[k] = t[k - 1] + (t[k - 1] - t[k - 2] if k > 1 and t[k - 1] > t[k - 2] else 1e-3)
    return t


def predictions_on_frames(frame_times: np.ndarray, predictions: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Per-frame predictions on the labels' frames (float32 [T]), the scoring side of :func:`decoded_lines`:
    decoded frame k (its line k) takes the prediction of the last frame whose line under ``shift`` is at or
    before k, and the first frame's before any (the causal hold of dataset.predictions_on_label_times, counted
    in decoded frames instead of seconds)."""
    predictions = np.asarray(predictions, np.float32)
    lines = decoded_lines(frame_times, shift)
    placed = np.searchsorted(lines, np.arange(len(lines)), side="right") - 1
    return predictions[np.clip(placed, 0, len(lines) - 1)]


@dataclass(frozen=True)
class FrameLabels:
    """One dimension of a recording's labels by frame: ``values[k]`` labels decoded frame k (NaN: none)."""

    values: np.ndarray  # float32 [L]: the label file's lines
    fps: float  # the header's, for a one-frame video's shift only
    frame_count: int = 0  # the header's frame count: every decoded frame's time must be given

    def lines(self, frame_times: np.ndarray, shift: float = 0.0) -> np.ndarray:
        """The line of each decoded frame under ``shift`` (int64 [T]): :func:`decoded_lines`."""
        return decoded_lines(frame_times, shift, self.fps)

    def at(self, frame_times: np.ndarray, shift: float = 0.0, where: str | Path = "<video>") -> np.ndarray:
        """The label of every decoded frame, given every decoded frame's time (in order): NaN where none."""
        frame_times = np.asarray(frame_times, np.float64)
        if len(frame_times) < self.frame_count - TRUNCATION_TOLERANCE_FRAMES:
            # a subset (found faces only, a tail) would give frame j of the subset line j: refuse it
            raise fail(
                where,
                f"{len(frame_times)} frame times for a video of {self.frame_count} frames: labels by decoded "
                f"frame need the time of every decoded frame, in order",
            )
        lines = self.lines(frame_times, shift)
        inside = (lines >= 0) & (lines < min(len(self.values), len(frame_times)))
        out = np.full(lines.shape, np.nan, np.float32)
        out[inside] = self.values[lines[inside]]
        return out

    def times(self) -> np.ndarray:
        """Line k's nominal time, k / fps (float64 [L]); a frame's own time is in its face file."""
        return np.arange(len(self.values), dtype=np.float64) / self.fps


def load(recording, dimension: str) -> FrameLabels:
    """A recording's ``dimension`` labels by frame (reads the label file and the video's header)."""
    from ..faces import video

    path = recording.labels.get(dimension) if recording.labels else None
    if path is None or dimension not in DIMENSIONS:
        raise fail(recording.video, f"subject {recording.subject} has no {dimension} labels")
    info = video.probe(recording.video)
    values = read_label_file(path)[:, DIMENSIONS.index(dimension)]
    return FrameLabels(np.ascontiguousarray(values), info.fps, max(0, info.frame_count))


def frame_labels(recording, dimension: str, frame_times: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """The label of every decoded frame, given all their times (float32 [T], NaN where none): see the rule."""
    return load(recording, dimension).at(frame_times, shift, recording.video)


# --------------------------------------------------------------------------- checks


def _problem(error: AffectflowError, path: Path) -> tuple[str, str]:
    text, prefix = str(error), f"{path}: "
    return (str(path), text[len(prefix) :]) if text.startswith(prefix) else (str(path), text)


def timing_notes(frame_times: np.ndarray) -> list[str]:
    """What ``corpus check`` says, as information, about a video's decoded frame times: a start offset, a
    varying frame rate, one line each (labels go by decoded frame, so neither is a problem)."""
    t = increasing_times(frame_times)
    notes = []
    if len(t) and abs(t[0]) >= NOTE_START_S:
        notes.append(f"starts at {t[0]:.3f} s")
    if len(t) > 2:
        rates = 1.0 / np.diff(t)
        if rates.max() > rates.min() * (1 + NOTE_RATE_SPREAD):
            notes.append(f"frame rate varies {rates.min():.1f}-{rates.max():.1f} fps")
    return notes


def check_labels(recording, frame_times: np.ndarray, fps: float):
    """Check a recording's label file against its decoded frames: (rows {dimension: lines}, ranges {dimension:
    (min, max) of the valid values}, problems [(path, problem)], notes [information on the video's timing])."""
    rows: dict[str, int] = {}
    ranges: dict[str, tuple[float, float]] = {}
    problems: list[tuple[str, str]] = []
    frame_times = np.asarray(frame_times, np.float64)
    notes = timing_notes(frame_times)
    for path in dict.fromkeys(recording.labels.values()):
        try:
            values = read_label_file(path)
        except AffectflowError as error:
            problems.append(_problem(error, path))
            continue
        for dimension in (d for d, p in recording.labels.items() if p == path):
            column = values[:, DIMENSIONS.index(dimension)]
            rows[dimension] = len(column)
            valid = column[np.isfinite(column)]
            ranges[dimension] = (float(valid.min()), float(valid.max())) if len(valid) else (np.nan, np.nan)
        gap = len(values) - len(frame_times)
        if len(frame_times) and abs(gap) > AFFWILD2_FRAME_TOLERANCE:
            problems.append(
                (
                    str(path),
                    f"{len(values)} label lines but the video {recording.video.name} decodes {len(frame_times)} "
                    f"frames ({abs(gap)} lines {'too many' if gap > 0 else 'short'}, more than the "
                    f"{AFFWILD2_FRAME_TOLERANCE} allowed)",
                )
            )
    return rows, ranges, problems, notes
