"""The feature file ``results/features/{variant}/{run}/{subject}.h5``: its one owner (docs/design.md, section 3).

What a frozen CNN makes of one face file, every frame (face-lost frames filled by the fill policy):

- ``features`` float32 [T, fc]: the CNN's feature layer (the RNN's input)
- ``prediction`` float32 [T]: the CNN's own regression output
- ``found`` bool [T], ``time`` float64 [T]: as in the face file
- attributes: ``cnn_sha256`` (the SHA-256 of the extracting CNN's weights: RNN training and
  evaluation refuse features of another CNN), ``model`` (the CNN model file's path, informative
  only), ``subject``, ``fill_policy``, ``normalization``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import fail
from .io import atomic_path

CNN_ATTR = "cnn_sha256"
DATASETS = ("features", "prediction", "found", "time")


@dataclass
class FeatureFile:
    time: np.ndarray  # float64 [T]
    found: np.ndarray  # bool [T]
    features: np.ndarray | None  # float32 [T, fc]; None when only the prediction was read
    prediction: np.ndarray  # float32 [T]
    attrs: dict


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
    import h5py

    count = len(time)
    if not len(features) == len(prediction) == len(found) == count:
        raise ValueError(f"{len(features)} features, {len(prediction)} predictions, {len(found)} found, {count} times")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("features", data=np.asarray(features, np.float32))
            h5.create_dataset("prediction", data=np.asarray(prediction, np.float32))
            h5.create_dataset("found", data=np.asarray(found, bool))
            h5.create_dataset("time", data=np.asarray(time, np.float64))
            h5.attrs.update(
                {
                    CNN_ATTR: cnn_sha256,
                    "model": model,
                    "subject": subject,
                    "fill_policy": fill_policy,
                    "normalization": normalization,
                }
            )


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
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in h5.attrs.items()}
            if cnn_sha256 is not None:
                made_by = attrs.get(CNN_ATTR)
                if made_by is None:
                    raise fail(path, f"feature file without {CNN_ATTR} (written by an older affectflow): extract again")
                if str(made_by) != cnn_sha256:
                    raise fail(path, "features were extracted by a different CNN than the model's")
            return FeatureFile(
                time=h5["time"][()].astype(np.float64),
                found=h5["found"][()].astype(bool),
                features=h5["features"][()].astype(np.float32) if with_features else None,
                prediction=h5["prediction"][()].astype(np.float32),
                attrs=attrs,
            )
    except OSError as error:
        raise fail(path, f"unreadable HDF5 file ({error})") from None
