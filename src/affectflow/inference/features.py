"""The feature file ``results/features/{variant}/{run}/{subject}.h5``: its one owner (docs/design.md, section 3).

What a frozen CNN makes of one face file, every frame (face-lost frames filled by the fill policy):

- ``features`` float32 [T, fc]: the CNN's feature layer (the RNN's input)
- ``prediction`` float32 [T]: the CNN's own regression output
- ``found`` bool [T], ``time`` float64 [T]: as in the face file
- attributes: ``cnn_sha256`` (the SHA-256 of the extracting CNN's weights: RNN training and
  evaluation refuse features of another CNN), ``model`` (the CNN model file's path, informative
  only), ``subject``, ``fill_policy``, ``normalization``.

:func:`feature_writer` writes one chunk by chunk (extraction: memory independent of the recording's
length); :func:`write_feature_file` writes a whole recording through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import fail
from ..io import atomic_path

CNN_ATTR = "cnn_sha256"
DATASETS = ("features", "prediction", "found", "time")


@dataclass
class FeatureFile:
    time: np.ndarray  # float64 [T]
    found: np.ndarray  # bool [T]
    features: np.ndarray | None  # float32 [T, fc]; None when only the prediction was read
    prediction: np.ndarray  # float32 [T]
    attrs: dict


class FeatureWriter:
    """Appends rows (chunks of one recording's frames, in order) to an open feature file; see
    :func:`feature_writer`."""

    def __init__(self, h5, path: Path, frames: int) -> None:
        self._h5, self._path, self.frames, self.rows = h5, path, frames, 0

    def append(self, *, features: np.ndarray, prediction: np.ndarray, found: np.ndarray, time: np.ndarray) -> None:
        n = len(time)
        if not len(features) == len(prediction) == len(found) == n:
            raise ValueError(f"{len(features)} features, {len(prediction)} predictions, {len(found)} found, {n} times")
        if self.rows + n > self.frames:
            raise ValueError(f"{self._path}: {self.rows + n} rows written to a file of {self.frames} frames")
        if n == 0:
            return
        features = np.asarray(features, np.float32)
        if "features" not in self._h5:
            self._h5.create_dataset("features", shape=(self.frames,) + features.shape[1:], dtype=np.float32)
        end = self.rows + n
        self._h5["features"][self.rows : end] = features
        self._h5["prediction"][self.rows : end] = np.asarray(prediction, np.float32)
        self._h5["found"][self.rows : end] = np.asarray(found, bool)
        self._h5["time"][self.rows : end] = np.asarray(time, np.float64)
        self.rows = end


@contextlib.contextmanager
def feature_writer(
    path,
    frames: int,
    *,
    cnn_sha256: str,
    model: str,
    subject: str,
    fill_policy: str,
    normalization: str,
    fc: int | None = None,
) -> Iterator[FeatureWriter]:
    """Write a feature file of `frames` rows chunk by chunk (datasets preallocated: memory of one chunk,
    whatever the recording's length). The file appears at `path` only when all `frames` rows were
    appended and the block ends without an error. `fc`: the feature width, needed only for 0 frames."""
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("prediction", shape=(frames,), dtype=np.float32)
            h5.create_dataset("found", shape=(frames,), dtype=bool)
            h5.create_dataset("time", shape=(frames,), dtype=np.float64)
            writer = FeatureWriter(h5, path, frames)
            yield writer
            if writer.rows != frames:
                raise ValueError(f"{path}: {writer.rows} of {frames} rows written")
            if "features" not in h5:
                h5.create_dataset("features", shape=(0, fc or 0), dtype=np.float32)
            h5.attrs.update(
                {
                    CNN_ATTR: cnn_sha256,
                    "model": model,
                    "subject": subject,
                    "fill_policy": fill_policy,
                    "normalization": normalization,
                }
            )


def write_feature_file(
    path,
    *,
    features: np.ndarray,
    prediction: np.ndarray,
    found: np.ndarray,
    time: np.ndarray,
    cnn_sha256: str,
    model: str,
    subject: str,
    fill_policy: str,
    normalization: str,
) -> None:
    """A whole recording's feature file (through :func:`feature_writer`)."""
    features = np.asarray(features, np.float32)
    with feature_writer(
        path,
        len(time),
        cnn_sha256=cnn_sha256,
        model=model,
        subject=subject,
        fill_policy=fill_policy,
        normalization=normalization,
        fc=features.shape[1] if features.ndim == 2 else None,
    ) as writer:
        writer.append(features=features, prediction=prediction, found=found, time=time)


def feature_structure_problem(h5) -> str | None:
    """What is wrong with an opened feature file's layout (named by dataset), or None: datasets (not
    groups) of numbers, features [T, D] and the rest [T], one row count, finite predictions, times finite
    and increasing (the features' values are checked as they are read)."""
    import h5py

    for name in DATASETS:
        if not isinstance(h5[name], h5py.Dataset) or h5[name].dtype.kind not in "fiub":
            return f"{name} is not a dataset of numbers"
    frames = len(h5["time"])
    if h5["features"].ndim != 2 or h5["features"].shape[1] < 1:
        return f"dataset features has shape {h5['features'].shape}, expected [frames, width]"
    for name in DATASETS:
        if h5[name].shape[0] != frames or (name != "features" and h5[name].ndim != 1):
            return f"dataset {name} has shape {h5[name].shape}, expected {frames} rows like time"
    time = h5["time"][()]
    if len(time) and (not np.isfinite(time).all() or (np.diff(time) <= 0).any()):
        return "dataset time is not finite and strictly increasing"
    if not np.isfinite(h5["prediction"][()]).all():
        return "dataset prediction holds NaN or inf"
    return None


def read_feature_file(path, cnn_sha256: str | None = None, with_features: bool = True) -> FeatureFile:
    """A feature file's arrays; with `cnn_sha256`, refuse features extracted by another CNN (or by an
    affectflow too old to record which)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise fail(path, "feature file not found (run `affectflow extract` first)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in DATASETS if k not in h5]
            if missing:
                raise fail(path, f"not an affectflow feature file: missing {', '.join(missing)}")
            problem = feature_structure_problem(h5)
            if problem:
                raise fail(path, problem)
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in h5.attrs.items()}
            if cnn_sha256 is not None:
                made_by = attrs.get(CNN_ATTR)
                if made_by is None:
                    raise fail(path, f"feature file without {CNN_ATTR} (written by an older affectflow): extract again")
                if str(made_by) != cnn_sha256:
                    raise fail(path, "features were extracted by a different CNN than the model's")
            features = h5["features"][()].astype(np.float32) if with_features else None
            if features is not None and not np.isfinite(features).all():
                raise fail(path, "dataset features holds NaN or inf")
            return FeatureFile(
                time=h5["time"][()].astype(np.float64),
                found=h5["found"][()].astype(bool),
                features=features,
                prediction=h5["prediction"][()].astype(np.float32),
                attrs=attrs,
            )
    except OSError as error:
        raise fail(path, f"unreadable HDF5 file ({error})") from None
