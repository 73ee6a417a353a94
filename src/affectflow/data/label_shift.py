"""Fitting the label shift (annotation delay) on training subjects only (``--label-shift auto``).

Dev never sees it: the fit uses the training recordings' faces and labels alone (fit_label_shift).
"""

from __future__ import annotations

import numpy as np

from .labels import by_frame, read_gold

DEFAULT_SHIFT_CANDIDATES = tuple(np.round(np.arange(0.0, 6.0001, 0.2), 3))


def descriptor_from_chips(normalized: np.ndarray) -> np.ndarray:
    """A cheap per-frame face descriptor for fitting the label shift: 12x12 block means (float32 [T, 144])."""
    n, size, _ = normalized.shape
    block = size // 12 if size >= 12 else 1
    cells = size // block
    x = normalized[:, : cells * block, : cells * block].astype(np.float32)
    return x.reshape(n, cells, block, cells, block).mean(axis=(2, 4)).reshape(n, -1)


SHIFT_CRITERION = "mean per-recording correlation"
# --label-shift auto fits on at most this many frames over all training recordings (every k-th found frame,
# the same k for all): 144 float64 values a frame, about 115 MB at this bound, whatever the corpus' size
# (one descriptor per found frame was about 3.2 GB at Aff-Wild2's 2.8 M frames).
MAX_SHIFT_FIT_FRAMES = 100_000


def shift_fit_rows(found: list[np.ndarray], limit: int = MAX_SHIFT_FIT_FRAMES) -> list[np.ndarray]:
    """The frames --label-shift auto fits on (fit_label_shift's `rows`): every found frame while there are at
    most `limit` of them over all recordings (the demo: the fit is unchanged), else every k-th found frame of
    each recording, k = ceil(found frames / limit): at most `limit` plus one per recording."""
    total = int(sum(int(np.count_nonzero(f)) for f in found))
    stride = max(1, -(-total // max(1, limit)))
    return [np.flatnonzero(np.asarray(f, bool))[::stride] for f in found]




MIN_SHIFT_FIT_FRAMES = 10  # per held-out part: fewer frames give no meaningful correlation


# A candidate range that leaves less of a recording than this labelled under every shift fits noise.
MIN_SHIFT_FIT_COVERAGE = 0.5


def fit_label_shift(
    descriptors: list[np.ndarray],
    times: list[np.ndarray],
    recordings: list,
    dimension: str,
    candidates=DEFAULT_SHIFT_CANDIDATES,
    ridge: float = 0.5,
    rows: list | None = None,
) -> dict:
    """Pick the annotation delay (seconds) that best fits on TRAINING subjects only.

    For every candidate shift s the target of frame t is the label at t + s. Every candidate is
    scored on one common frame set: the frames that have a label under every candidate shift
    (otherwise candidates compete on different frames). Labels are centred and descriptors
    standardized (centred, unit variance per column) per recording, since a pooled score is
    dominated by per-subject offsets that say nothing about the delay, and an identity's own
    contrast would otherwise weigh on the regression. A ridge regression from descriptor to label
    is fitted leave-one-recording-out (a single recording is cut into halves, each standardized on
    its own), with penalty `ridge` x the number of training frames (so it means the same for a 1-min
    demo and 5-min RECOLA recordings; strong, as few training identities must generalize to
    another). A candidate's score is the mean over held-out recordings of the Pearson correlation
    of prediction and label.

    The best candidate must lie inside the candidate range: a maximum at its edge only says that
    the true delay may lie beyond it, so that is an AffectflowError asking for a wider range or
    a fixed shift. Returns {"shift", "candidates", "score" (None where undefined), "criterion",
    "frames" (size of the common frame set)}.

    `rows` (optional, one int array per recording): the frame (an index into `times`, which then holds
    every frame's time) of each descriptor row; without it the descriptors are `times`' own rows. Labels by
    decoded frame need every frame's time to count lines, while the descriptors need only a bounded subset
    (shift_fit_rows): that is what keeps the fit's memory bounded on a large corpus.
    """
    from ..errors import AffectflowError

    if len(descriptors) == 0:
        raise ValueError("no training subjects to fit the label shift on")
    if not len(descriptors) == len(times) == len(recordings) == len(rows if rows is not None else times):
        raise ValueError(f"{len(descriptors)} descriptors, {len(times)} time arrays, {len(recordings)} recordings")
    candidates = [float(c) for c in candidates]
    if len(candidates) < 3:
        raise ValueError(f"need at least 3 candidate shifts to find an inner maximum, got {candidates}")
    shifts = np.asarray(candidates, np.float64)
    subjects = ", ".join(r.subject for r in recordings)
    parts = _common_frames(descriptors, times, recordings, dimension, shifts, rows)
    score = _held_out_scores(parts, shifts, ridge)
    if not np.isfinite(score).any():
        raise AffectflowError(
            f"--label-shift auto: no candidate shift gives a defined correlation on {subjects} "
            f"(constant descriptors or labels)"
        )
    best = int(np.nanargmax(score))
    if best in (int(np.argmin(shifts)), int(np.argmax(shifts))):
        raise AffectflowError(
            f"--label-shift auto: the best shift, {candidates[best]:g} s, is at the edge of the candidate range "
            f"{min(candidates):g}..{max(candidates):g} s (fit on {subjects}, {dimension}); the delay may lie "
            f"beyond it: widen the range or set --label-shift to a number of seconds"
        )
    return {
        "shift": candidates[best],
        "candidates": candidates,
        "score": [float(s) if np.isfinite(s) else None for s in score],
        "criterion": SHIFT_CRITERION,
        "frames": int(sum(len(x) for _, x, _ in parts)),
    }


def _common_frames(descriptors, times, recordings, dimension: str, shifts: np.ndarray, rows=None) -> list[tuple]:
    """(name, standardized descriptors [n, d], centred labels [n, candidates]) per recording, on the frames
    labelled under every candidate shift; a single recording is cut into halves that hold each other out."""
    from . import corpus
    from ..errors import AffectflowError

    candidates = [float(c) for c in shifts]
    parts, uncovered = [], []
    for i, (descriptor, frame_times, recording) in enumerate(zip(descriptors, times, recordings)):
        frame_times = np.asarray(frame_times, np.float64)
        taken = np.arange(len(frame_times)) if rows is None else np.asarray(rows[i], np.int64)
        descriptor = np.asarray(descriptor, np.float64).reshape(len(taken), -1)
        if by_frame(recording):  # each candidate's labels by frame (frame_labels' rule), read once
            from . import affwild2

            by_line = affwild2.load(recording, dimension)
            labels = np.stack([by_line.at(frame_times, s, recording.video)[taken] for s in shifts], axis=1)
            labels = labels.astype(np.float64)
        else:
            label_times, label_values = read_gold(recording, dimension)  # once per recording, not per candidate
            labels = np.stack(
                [corpus.labels_for_frames(label_times - s, label_values, frame_times[taken]) for s in shifts], axis=1
            ).astype(np.float64)
        common = np.isfinite(labels).all(axis=1) & np.isfinite(descriptor).all(axis=1)
        if common.mean() < MIN_SHIFT_FIT_COVERAGE:
            uncovered.append(f"{recording.subject} ({common.sum()} of {len(common)} frames)")
        parts.append((recording.subject, descriptor[common], labels[common]))
    if uncovered:
        raise AffectflowError(
            f"--label-shift auto: the candidate shifts {min(candidates):g}..{max(candidates):g} s leave less than "
            f"{MIN_SHIFT_FIT_COVERAGE:.0%} of the frames labelled under every shift in {', '.join(uncovered)}; "
            f"the recordings are too short for that range: set --label-shift to a number of seconds"
        )
    if len(parts) == 1:  # one recording: its halves hold each other out
        name, x, y = parts[0]
        half = len(x) // 2
        parts = [(f"{name} (first half)", x[:half], y[:half]), (f"{name} (second half)", x[half:], y[half:])]
    short = [name for name, x, _ in parts if len(x) < MIN_SHIFT_FIT_FRAMES]
    if short:
        raise AffectflowError(
            f"--label-shift auto: {', '.join(short)} has fewer than {MIN_SHIFT_FIT_FRAMES} frames with a label "
            f"under every candidate shift {min(candidates):g}..{max(candidates):g} s; the recordings are too "
            f"short for that range (narrow it or set the shift)"
        )
    # The 1e-6 keeps a column that is constant in one recording at 0 rather than NaN.
    return [(name, (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6), y - y.mean(axis=0)) for name, x, y in parts]


def _held_out_scores(parts: list[tuple], shifts: np.ndarray, ridge: float) -> np.ndarray:
    """Each candidate's mean over held-out recordings of the Pearson correlation between the ridge
    regression's prediction (fitted on the other recordings) and the label; NaN where undefined."""
    from ..metrics import pearson

    correlations = np.full((len(parts), len(shifts)), np.nan)
    for held in range(len(parts)):
        train_x = np.concatenate([x for i, (_, x, _) in enumerate(parts) if i != held])
        train_y = np.concatenate([y for i, (_, _, y) in enumerate(parts) if i != held])
        gram = train_x.T @ train_x + ridge * len(train_x) * np.eye(train_x.shape[1])
        weights = np.linalg.solve(gram, train_x.T @ train_y)  # one solve for every candidate at once
        _, held_x, held_y = parts[held]
        predicted = held_x @ weights
        correlations[held] = [pearson(predicted[:, k], held_y[:, k]) for k in range(len(shifts))]
    with np.errstate(all="ignore"):
        finite = np.isfinite(correlations)
        counts = finite.sum(axis=0)
        return np.where(counts > 0, np.where(finite, correlations, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
