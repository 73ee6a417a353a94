"""Joining per-subject face/feature files with the corpus' frame labels.

- Frames and labels are matched by timestamp (affectflow.corpus.labels_for_frames),
  never by counting.
- Fill policy for frames where no face was found or tracked (FILL_POLICY): the
  frame takes the last found frame's content; frames before the first found
  frame take the first found one. The CNN trains on found frames only;
  extraction fills every frame, so the features, the RNN's windows and the
  scored prediction track cover the whole recording.
- Label shift (annotation delay, seconds): the label at time t + shift is the
  target of the frame at time t (annotators lag the face). 0 is the paper.
  "auto" fits it on training subjects only (fit_label_shift); dev never sees it.
  At scoring time the prediction of frame t is placed at time t + shift
  (shift_predictions) and compared with the unshifted gold standard.
- RNN input features (FEATURE_NORMS): "recording" (default) standardizes each
  recording's CNN features by that recording's own mean/std over all its frames
  (no labels involved): it removes identity-specific offsets that a frozen CNN
  trained on a few subjects leaves in unseen subjects' features; "train" uses
  the training set's mean/std only (closest to the paper, which says nothing).
- RNN windows: the window for frame t is frames [t-W+1, t]; windows reaching
  before the first frame repeat the first frame (edge padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import fail

FILL_POLICY = "hold-last-found (frames before the first found face take the first found one)"
DEFAULT_SHIFT_CANDIDATES = tuple(np.round(np.arange(0.0, 6.0001, 0.2), 3))


def fill_index(found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    """Index of the frame whose content each frame takes under FILL_POLICY."""
    found = np.asarray(found, dtype=bool)
    if not found.any():
        raise fail(where, "no frame with a detected face")
    positions = np.arange(len(found))
    last = np.maximum.accumulate(np.where(found, positions, -1))
    first_found = int(np.argmax(found))
    return np.where(last < 0, first_found, last)


def apply_fill(values: np.ndarray, found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    return values[fill_index(found, where)]


# ----------------------------------------------------------------------------- labels

def frame_labels(recording, dimension: str, frame_times: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Gold label per frame (float32, NaN where none), the label at t + shift for frame t."""
    from . import corpus

    path = recording.labels.get(dimension) if getattr(recording, "labels", None) else None
    if path is None:
        raise fail(recording.video, f"subject {recording.subject} has no {dimension} labels")
    label_times, label_values = corpus.read_labels(path)
    return corpus.labels_for_frames(np.asarray(label_times) - shift, label_values,
                                    np.asarray(frame_times, dtype=np.float64))


def shift_predictions(times: np.ndarray, predictions: np.ndarray, shift: float) -> np.ndarray:
    """Predictions re-timed to the gold standard's clock: value at t = prediction of frame t - shift.

    The nearest frame is used; times before the first frame hold its prediction.
    """
    if shift == 0.0 or len(times) == 0:
        return np.asarray(predictions, dtype=np.float32)
    source = np.searchsorted(times, times - shift, side="left")
    source = np.clip(source, 0, len(times) - 1)
    previous = np.clip(source - 1, 0, len(times) - 1)
    closer_previous = np.abs(times[previous] - (times - shift)) < np.abs(times[source] - (times - shift))
    source = np.where(closer_previous, previous, source)
    return np.asarray(predictions, dtype=np.float32)[source]


def descriptor_from_chips(normalized: np.ndarray) -> np.ndarray:
    """A cheap per-frame face descriptor for fitting the label shift: 12x12 block means."""
    n, size, _ = normalized.shape
    block = size // 12 if size >= 12 else 1
    cells = size // block
    x = normalized[:, : cells * block, : cells * block].astype(np.float32)
    return x.reshape(n, cells, block, cells, block).mean(axis=(2, 4)).reshape(n, -1)


def fit_label_shift(descriptors: list[np.ndarray], times: list[np.ndarray], recordings: list,
                    dimension: str, candidates=DEFAULT_SHIFT_CANDIDATES, ridge: float = 10.0) -> dict:
    """Pick the annotation delay that best fits on TRAINING subjects only.

    For each candidate shift a ridge regression from the descriptor to the shifted
    labels is fitted leave-one-subject-out (or on the first/second half of the
    frames with a single subject) and scored by CCC of the held-out predictions;
    the best candidate wins. Returns {"shift", "candidates", "ccc"}.
    """
    from .metrics import ccc

    folds = len(descriptors)
    if folds == 0:
        raise ValueError("no training subjects to fit the label shift on")
    feats = [np.concatenate([d, np.ones((len(d), 1), np.float32)], axis=1).astype(np.float64)
             for d in descriptors]
    results = []
    for shift in candidates:
        labels = [frame_labels(r, dimension, t, float(shift)) for r, t in zip(recordings, times)]
        if folds >= 2:
            parts = list(zip(feats, labels))
        else:  # one subject: split its frames in halves
            half = len(feats[0]) // 2
            parts = [(feats[0][:half], labels[0][:half]), (feats[0][half:], labels[0][half:])]
        preds, golds = [], []
        for held in range(len(parts)):
            xs = np.concatenate([p[0] for i, p in enumerate(parts) if i != held])
            ys = np.concatenate([p[1] for i, p in enumerate(parts) if i != held]).astype(np.float64)
            ok = np.isfinite(ys)
            a = xs[ok].T @ xs[ok] + ridge * np.eye(xs.shape[1])
            w = np.linalg.solve(a, xs[ok].T @ ys[ok])
            preds.append(parts[held][0] @ w)
            golds.append(parts[held][1])
        results.append(ccc(np.concatenate(preds), np.concatenate(golds)))
    scores = np.nan_to_num(np.asarray(results, dtype=np.float64), nan=-np.inf)
    best = int(np.argmax(scores))
    return {"shift": float(candidates[best]), "candidates": [float(c) for c in candidates],
            "ccc": [float(r) for r in results]}


# ----------------------------------------------------------------------------- per-subject data

@dataclass
class SubjectFrames:
    subject: str
    time: np.ndarray  # float64 [T]
    found: np.ndarray  # bool [T]
    data: np.ndarray  # [T, ...] normalized chips (float16) or features (float32), filled
    labels: np.ndarray | None = None  # float32 [T], NaN where no label


def load_faces(path: Path, subject: str) -> SubjectFrames:
    from .faces import read_faces

    track = read_faces(path, chips=False)
    if track.normalized.ndim != 3 or track.normalized.shape[1] != track.normalized.shape[2]:
        raise fail(path, f"normalized must be [T,S,S], got {track.normalized.shape}")
    filled = apply_fill(np.asarray(track.normalized, dtype=np.float16), track.found, path)
    return SubjectFrames(subject, np.asarray(track.time, np.float64), np.asarray(track.found, bool), filled)


def load_features(path: Path, subject: str) -> SubjectFrames:
    import h5py

    if not Path(path).is_file():
        raise fail(path, "feature file not found (run `affectflow extract` first)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in ("features", "found", "time") if k not in h5]
            if missing:
                raise fail(path, f"not an affectflow feature file: missing {missing}")
            return SubjectFrames(subject, h5["time"][()].astype(np.float64), h5["found"][()].astype(bool),
                                 h5["features"][()].astype(np.float32))
    except OSError as error:
        raise fail(path, f"unreadable HDF5 file ({error})") from None


def read_prediction(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(time, prediction) of a feature file: the CNN's own per-frame output."""
    import h5py

    if not Path(path).is_file():
        raise fail(path, "feature file not found (run `affectflow extract` first)")
    with h5py.File(path, "r") as h5:
        if "prediction" not in h5:
            raise fail(path, "feature file has no 'prediction' dataset")
        return h5["time"][()].astype(np.float64), h5["prediction"][()].astype(np.float32)


FEATURE_NORMS = ("recording", "train")


def rnn_inputs(features: np.ndarray, feature_norm: str) -> np.ndarray:
    """CNN features [T,D] as the RNN sees them under `feature_norm` (see FEATURE_NORMS)."""
    features = np.asarray(features, np.float32)
    if feature_norm == "train":
        return features  # the model standardizes with its stored training-set statistics
    if feature_norm != "recording":
        raise ValueError(f"unknown feature norm {feature_norm!r}")
    return (features - features.mean(0)) / (features.std(0) + 1e-3)


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start indices of full training windows [s, s+W) inside a recording."""
    if length < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, length - window + 1, max(1, stride), dtype=np.int64)
