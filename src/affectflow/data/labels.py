"""Label timing: which label each frame takes, and where each prediction is placed (TIME_CONVENTION).

- Frames and labels are matched by timestamp (affectflow.data.corpus.labels_for_frames), never by
  counting. Labels by frame (Aff-Wild2, ``recording.labels_by == "frame"``): line k labels decoded
  frame k at its own time, k / fps, and the frame at time t takes line round((t + shift) * fps),
  never interpolated; -5, a missing line or a line past the video is NaN (affectflow.data.affwild2).
- Label shift (annotation delay, seconds): the label at time t + shift is the target of the frame
  at time t (annotators lag the face). 0 is the paper. At scoring time the prediction of frame t is
  placed at time t + shift (shift_predictions) and compared with the unshifted gold standard.
"""

from __future__ import annotations

import numpy as np

from ..errors import fail


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

    Interpolated between label rows (affectflow.data.corpus.labels_for_frames), so every frame whose
    t + shift lies in the labelled span has a label, for any shift and any frame rate.
    By frame (Aff-Wild2): `frame_times` are every decoded frame's times, in order, and frame k takes
    line k at shift 0, else the line of the decoded frame nearest to t_k + shift, never interpolated;
    NaN where that line is -5, missing or past the video (affectflow.data.affwild2.decoded_lines).
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


def scored_predictions(
    recording, frame_times: np.ndarray, predictions: np.ndarray, label_times: np.ndarray, shift: float = 0.0
) -> np.ndarray:
    """The prediction scored against each of scored_labels' rows (float32 [N]): by time,
    predictions_on_label_times; by frame, decoded frame k's row takes the prediction of the last frame
    whose line under `shift` is at or before k (affectflow.data.affwild2.predictions_on_frames), so training
    and scoring count the shift alike."""
    if not by_frame(recording):
        return predictions_on_label_times(frame_times, predictions, label_times, shift)
    from . import affwild2

    frame_times = np.asarray(frame_times, np.float64)
    placed = affwild2.predictions_on_frames(frame_times, predictions, shift)
    rows = np.searchsorted(frame_times, np.asarray(label_times, np.float64))  # label times are frame times
    if len(rows) and (rows.max() >= len(frame_times) or not np.array_equal(frame_times[rows], label_times)):
        raise ValueError("labels by frame are scored at the decoded frames' own times")
    return placed[rows]


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
