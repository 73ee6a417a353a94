"""Joining per-subject face/feature files with the corpus' frame labels.

- Frames and labels are matched by timestamp (affectflow.corpus.labels_for_frames),
  never by counting. Labels by frame (Aff-Wild2, ``recording.labels_by == "frame"``):
  line k labels decoded frame k at its own time, k / fps, and the frame at time t
  takes line round((t + shift) * fps), never interpolated; -5, a missing line or a
  line past the video is NaN (affectflow.affwild2).
- Fill policy for frames where no face was found or tracked (FILL_POLICY): the
  frame takes the last found frame's chip; frames before the first found frame
  get a blank (zero) chip, so no frame borrows from the future. The CNN trains
  on found frames only; extraction fills every frame, so the features, the
  RNN's windows and the scored prediction track cover the whole recording.
- Label shift (annotation delay, seconds): the label at time t + shift is the
  target of the frame at time t (annotators lag the face). 0 is the paper.
  "auto" fits it on training subjects only (fit_label_shift); dev never sees it.
  At scoring time the prediction of frame t is placed at time t + shift
  (shift_predictions) and compared with the unshifted gold standard.
- RNN input features (FEATURE_NORMS, see rnn_inputs): "causal" (default)
  standardizes frame t by running statistics of its recording's frames <= t
  (started from the training set's statistics), label-free and causal: it
  removes identity-specific offsets that a frozen CNN trained on a few subjects
  leaves in unseen subjects' features without looking ahead; "train" uses the
  training set's mean/std only; "recording-transductive" uses each recording's
  mean/std over ALL its frames, so a prediction at t depends on frames after t.
- RNN windows: the window for frame t is frames [t-W+1, t]; windows reaching
  before the first frame repeat the first frame (edge padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contracts import FEATURE_NORMS
from .errors import fail

FILL_POLICY = "hold-last-found (frames before the first found face get a blank chip: causal)"
DEFAULT_SHIFT_CANDIDATES = tuple(np.round(np.arange(0.0, 6.0001, 0.2), 3))


def fill_index(found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    """Index of the frame whose content each frame takes under FILL_POLICY; -1 before the first found face.

    Only earlier frames are ever used, so a filled frame never depends on the future.
    """
    found = np.asarray(found, dtype=bool)
    if not found.any():
        raise fail(where, "no frame with a detected face")
    positions = np.arange(len(found))
    return np.maximum.accumulate(np.where(found, positions, -1))


def apply_fill(values: np.ndarray, found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    """`values` [T,...] with face-lost frames filled under FILL_POLICY (blank = zeros before the first face)."""
    fill_index(found, where)  # refuses a recording without any face
    return ChunkFill()(values, found)


class ChunkFill:
    """FILL_POLICY over a recording that arrives in chunks: a chunk's frames before its first found face
    take the last found frame of the earlier chunks (blank before the recording's first face)."""

    def __init__(self) -> None:
        self.last: np.ndarray | None = None

    def __call__(self, values: np.ndarray, found: np.ndarray) -> np.ndarray:
        values, found = np.asarray(values), np.asarray(found, dtype=bool)
        index = np.maximum.accumulate(np.where(found, np.arange(len(found)), -1)) if len(found) else found.astype(int)
        filled = values[np.maximum(index, 0)] if len(values) else values.copy()
        before = index < 0
        if before.any():
            filled[before] = 0 if self.last is None else self.last
        if found.any():
            self.last = values[index[-1]].copy()
        return filled


# ----------------------------------------------------------------------------- labels


def by_frame(recording) -> bool:
    """Whether a recording's labels are indexed by frame (Aff-Wild2) rather than by time."""
    return getattr(recording, "labels_by", "time") == "frame"


def read_gold(recording, dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """A recording's gold standard of `dimension`: (row times float64 [N], values float32 [N]).

    By frame: one row per label line up to the video's frame count, at k / fps, NaN where -5.
    """
    from . import corpus

    path = recording.labels.get(dimension) if getattr(recording, "labels", None) else None
    if path is None:
        raise fail(recording.video, f"subject {recording.subject} has no {dimension} labels")
    if by_frame(recording):
        from . import affwild2

        labels = affwild2.load(recording, dimension)
        return labels.times(), labels.values
    return corpus.read_labels(path)


def frame_labels(recording, dimension: str, frame_times: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Gold label per frame (float32, NaN where none): the gold standard at t + shift for frame t.

    Interpolated between label rows (affectflow.corpus.labels_for_frames), so every frame whose
    t + shift lies in the labelled span has a label, for any shift and any frame rate.
    By frame (Aff-Wild2): the label of the frame nearest to t + shift, line round((t + shift) * fps),
    never interpolated; NaN where that line is -5, missing or past the video (affectflow.affwild2).
    """
    from . import corpus

    if by_frame(recording):
        from . import affwild2

        return affwild2.frame_labels(recording, dimension, frame_times, shift)
    label_times, label_values = read_gold(recording, dimension)
    return corpus.labels_for_frames(
        np.asarray(label_times) - shift, label_values, np.asarray(frame_times, dtype=np.float64)
    )


def scored_labels(recording, dimension: str, frame_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labels `evaluate` scores: (times float64 [N], gold float32 [N]).

    By time: every gold-standard row, at its own time (read_gold). By frame: every decoded frame (the
    feature file's `frame_times`, one per decoded frame) that has a valid label, at the frame's own
    time; -5, missing lines and lines past the video are not scored (ABAW scores every validly
    labelled frame).
    """
    if not by_frame(recording):
        return read_gold(recording, dimension)
    frame_times = np.asarray(frame_times, np.float64)
    gold = frame_labels(recording, dimension, frame_times)
    valid = np.isfinite(gold)
    return frame_times[valid], gold[valid]


def predictions_on_label_times(
    frame_times: np.ndarray, predictions: np.ndarray, label_times: np.ndarray, shift: float = 0.0
) -> np.ndarray:
    """Per-frame predictions on the gold standard's clock: one value per label time (float32 [N]).

    The prediction of frame t belongs at time t + shift (annotators lag the face by `shift` s).
    A label time takes the prediction of the LAST placed frame at or before it (a causal hold:
    interpolating would borrow from a frame up to one frame period later); label times before
    the first placed frame take the first frame's. Every gold row gets a value whatever the
    video's frame rate or dropped frames; on the shared 40 ms grid it is the frame's own value.
    """
    frame_times = np.asarray(frame_times, np.float64)
    predictions = np.asarray(predictions, np.float64)
    label_times = np.asarray(label_times, np.float64)
    if frame_times.shape != predictions.shape or frame_times.ndim != 1:
        raise ValueError(f"{frame_times.shape} frame times against {predictions.shape} predictions")
    if frame_times.size == 0:
        return np.full(label_times.shape, np.nan, np.float32)
    if np.any(np.diff(frame_times) <= 0):  # np.interp would silently return garbage
        raise ValueError("frame times must increase strictly")
    # 1e-6 s: a label time that equals a frame time up to float rounding belongs to that frame
    placed = np.searchsorted(frame_times + float(shift), label_times + 1e-6, side="right") - 1
    return predictions[np.clip(placed, 0, len(frame_times) - 1)].astype(np.float32)


def shift_predictions(times: np.ndarray, predictions: np.ndarray, shift: float) -> np.ndarray:
    """Predictions re-timed to the gold standard's clock, at the frame times themselves.

    Value at t = prediction of the last frame at or before t - shift; times before the first
    frame + shift hold its prediction (see predictions_on_label_times).
    """
    if shift == 0.0 or len(times) == 0:
        return np.asarray(predictions, dtype=np.float32)
    return predictions_on_label_times(times, predictions, times, shift)


# Every per-frame output (predict, annotate, evaluate's CSV) follows this one convention.
TIME_CONVENTION = (
    "a value at time t is the model's estimate of the annotation at t: the prediction of the last frame "
    "at or before t - label_shift (annotators lag the face by label_shift s; before the first frame + "
    "label_shift, the first frame's prediction)"
)


class ShiftedStream:
    """shift_predictions over a recording that arrives in chunks, in bounded memory: push(times,
    predictions) returns the values at those frame times. It keeps the frames of the last
    `shift` seconds (and the one before them), which the next chunk's times may still need."""

    def __init__(self, shift: float) -> None:
        self.shift = float(shift)
        self.times = np.zeros(0, np.float64)
        self.predictions = np.zeros(0, np.float32)

    def __call__(self, times: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        if self.shift == 0.0 or len(times) == 0:
            return np.asarray(predictions, dtype=np.float32)
        self.times = np.concatenate([self.times, np.asarray(times, np.float64)])
        self.predictions = np.concatenate([self.predictions, np.asarray(predictions, np.float32)])
        placed = predictions_on_label_times(self.times, self.predictions, times, self.shift)
        # later times are past times[-1]: they place at or after the frame that times[-1] placed at
        keep = max(0, int(np.searchsorted(self.times + self.shift, times[-1] + 1e-6, side="right")) - 1)
        self.times, self.predictions = self.times[keep:], self.predictions[keep:]
        return placed


def descriptor_from_chips(normalized: np.ndarray) -> np.ndarray:
    """A cheap per-frame face descriptor for fitting the label shift: 12x12 block means (float32 [T, 144])."""
    n, size, _ = normalized.shape
    block = size // 12 if size >= 12 else 1
    cells = size // block
    x = normalized[:, : cells * block, : cells * block].astype(np.float32)
    return x.reshape(n, cells, block, cells, block).mean(axis=(2, 4)).reshape(n, -1)


SHIFT_CRITERION = "mean per-recording correlation"
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
    """
    from . import corpus
    from .errors import AffectflowError
    from .metrics import pearson

    if len(descriptors) == 0:
        raise ValueError("no training subjects to fit the label shift on")
    if not len(descriptors) == len(times) == len(recordings):
        raise ValueError(f"{len(descriptors)} descriptors, {len(times)} time arrays, {len(recordings)} recordings")
    candidates = [float(c) for c in candidates]
    if len(candidates) < 3:
        raise ValueError(f"need at least 3 candidate shifts to find an inner maximum, got {candidates}")
    shifts = np.asarray(candidates, np.float64)
    subjects = ", ".join(r.subject for r in recordings)

    # (name, descriptors [n, d], labels [n, candidates]) on the common frame set, per recording.
    parts, uncovered = [], []
    for descriptor, frame_times, recording in zip(descriptors, times, recordings):
        frame_times = np.asarray(frame_times, np.float64)
        descriptor = np.asarray(descriptor, np.float64).reshape(len(frame_times), -1)
        if by_frame(recording):  # each candidate's labels by frame (frame_labels' rule), read once
            from . import affwild2

            by_line = affwild2.load(recording, dimension)
            labels = np.stack([by_line.at(frame_times, s) for s in shifts], axis=1).astype(np.float64)
        else:
            label_times, label_values = read_gold(recording, dimension)  # once per recording, not per candidate
            labels = np.stack(
                [corpus.labels_for_frames(label_times - s, label_values, frame_times) for s in shifts], axis=1
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
    parts = [(name, (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6), y - y.mean(axis=0)) for name, x, y in parts]

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
        score = np.where(counts > 0, np.where(finite, correlations, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
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


# ----------------------------------------------------------------------------- per-subject data


@dataclass
class SubjectFrames:
    subject: str
    time: np.ndarray  # float64 [T]
    found: np.ndarray  # bool [T]
    data: np.ndarray  # [T, ...] raw chips (uint8) or features (float32), filled
    labels: np.ndarray | None = None  # float32 [T], NaN where no label


def load_faces(path: Path, subject: str) -> SubjectFrames:
    """A face file's raw uint8 chips (filled) with time and found: the CNN normalizes them on the device."""
    from .faces import read_faces

    track = read_faces(path)
    filled = apply_fill(track.chips, track.found, path)
    return SubjectFrames(subject, np.asarray(track.time, np.float64), np.asarray(track.found, bool), filled)


def load_features(path: Path, subject: str, cnn_sha256: str | None = None) -> SubjectFrames:
    """A feature file's features (affectflow.features) with time and found; with `cnn_sha256`, only
    features of that CNN are accepted."""
    from .features import read_feature_file

    data = read_feature_file(path, cnn_sha256)
    return SubjectFrames(subject, data.time, data.found, data.features)


# Weight of the training-set statistics in the causal running statistics, in frames (10 s at 25 fps):
# fixed by design, not tuned on any data.
CAUSAL_PRIOR_FRAMES = 250


def feature_prior(training_features: list[np.ndarray], frames: int = CAUSAL_PRIOR_FRAMES) -> dict:
    """The training set's raw feature statistics: the prior of the causal running statistics."""
    stacked = np.concatenate(training_features).astype(np.float64)
    return {"mean": stacked.mean(0).tolist(), "std": stacked.std(0).tolist(), "frames": int(frames)}


def causal_standardize(features: np.ndarray, prior: dict) -> np.ndarray:
    """Standardize frame t by running statistics of frames 0..t of its own recording only.

    The running mean and variance start from the training set's (weighted as prior["frames"]
    frames), so the first frames are standardized sensibly, and move towards the recording's
    own statistics as its frames arrive. Frame t never sees a frame after t.
    """
    return CausalStandardizer(prior)(features)


class CausalStandardizer:
    """causal_standardize over a recording that arrives in chunks (and in blocks within a chunk, so that a
    long recording needs no float64 copies of all its frames): the running sums carry over."""

    BLOCK = 4096

    def __init__(self, prior: dict) -> None:
        n0 = float(prior["frames"])
        mean0, std0 = np.asarray(prior["mean"], np.float64), np.asarray(prior["std"], np.float64)
        self.count = n0
        self.total = n0 * mean0
        self.total_sq = n0 * (std0**2 + mean0**2)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features)
        out = np.empty(features.shape, np.float32)
        for begin in range(0, len(features), self.BLOCK):
            x = features[begin : begin + self.BLOCK].astype(np.float64)
            count = self.count + np.arange(1, len(x) + 1, dtype=np.float64)[:, None]
            total = self.total + np.cumsum(x, 0)
            total_sq = self.total_sq + np.cumsum(x**2, 0)
            mean = total / count
            std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
            out[begin : begin + len(x)] = (x - mean) / (std + 1e-3)
            self.count, self.total, self.total_sq = float(count[-1, 0]), total[-1], total_sq[-1]
        return out


def rnn_inputs(features: np.ndarray, feature_norm: str, prior: dict | None = None) -> np.ndarray:
    """CNN features [T,D] of one recording as the RNN sees them under `feature_norm`:

    - "causal" (default): per-recording running statistics of frames <= t (causal_standardize),
      label-free; needs the training-set `prior` (feature_prior), stored with the run;
    - "train": unchanged here; the model standardizes with its stored training-set statistics;
    - "recording-transductive": the recording's own mean/std over ALL its frames, so frame t
      depends on frames after t. Tables that use it say so.
    """
    features = np.asarray(features, np.float32)
    if feature_norm == "train":
        return features  # the model standardizes with its stored training-set statistics
    if feature_norm == "causal":
        if prior is None:
            raise ValueError("feature norm 'causal' needs the training-set prior statistics")
        return causal_standardize(features, prior)
    if feature_norm == "recording-transductive":
        return (features - features.mean(0)) / (features.std(0) + 1e-3)
    raise ValueError(f"unknown feature norm {feature_norm!r}; choose one of {', '.join(FEATURE_NORMS)}")


def window_ends(length: int, stride: int) -> np.ndarray:
    """Last frames of the training windows of a recording: every `stride`-th frame from the first.

    The window ending at frame t is [t-W+1, t]; before the first frame it is edge-padded.
    """
    return np.arange(0, length, max(1, stride), dtype=np.int64)
