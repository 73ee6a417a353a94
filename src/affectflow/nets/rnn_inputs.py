"""What the RNN sees: its input features and its training windows.

- RNN input features (FEATURE_NORMS, see rnn_inputs): "causal" (default) standardizes frame t by
  running statistics of its recording's frames <= t (started from the training set's statistics),
  label-free and causal: it removes identity-specific offsets that a frozen CNN trained on a few
  subjects leaves in unseen subjects' features without looking ahead; "train" uses the training
  set's mean/std only; "recording-transductive" uses each recording's mean/std over ALL its frames,
  so a prediction at t depends on frames after t.
- RNN windows: the window for frame t is frames [t-W+1, t]; windows reaching before the first frame
  repeat the first frame (edge padding).
"""

from __future__ import annotations

import numpy as np

from ..contracts import FEATURE_NORMS

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
