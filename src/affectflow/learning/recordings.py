"""A subject's frames as training reads them: a face file's raw chips or a feature file's features,
with each frame's time and whether a face was found (filled under affectflow.data.fill.FILL_POLICY).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.fill import apply_fill


@dataclass
class SubjectFrames:
    subject: str
    time: np.ndarray  # float64 [T]
    found: np.ndarray  # bool [T]
    data: np.ndarray  # [T, ...] raw chips (uint8) or features (float32), filled
    labels: np.ndarray | None = None  # float32 [T], NaN where no label


def load_faces(path: Path, subject: str) -> SubjectFrames:
    """A face file's raw uint8 chips (filled) with time and found: the CNN normalizes them on the device."""
    from ..faces.facefile import read_faces

    track = read_faces(path)
    filled = apply_fill(track.chips, track.found, path)
    return SubjectFrames(subject, np.asarray(track.time, np.float64), np.asarray(track.found, bool), filled)


def load_features(path: Path, subject: str, cnn_sha256: str | None = None) -> SubjectFrames:
    """A feature file's features (affectflow.inference.features) with time and found; with `cnn_sha256`, only
    features of that CNN are accepted."""
    from ..inference.features import read_feature_file

    data = read_feature_file(path, cnn_sha256)
    return SubjectFrames(subject, data.time, data.found, data.features)
