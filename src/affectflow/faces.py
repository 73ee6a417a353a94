"""The per-subject face file ``results/faces/{subject}.h5`` (docs/design.md, section 3).

One row per video frame, frames without a face included (``found`` False) so
that frames and labels stay aligned by time:

- ``chips`` uint8 [T, S, S]: aligned grayscale crops
- ``normalized`` float16 [T, S, S]: mean-subtracted, contrast-normalized chips
- ``found`` bool [T]: a face was detected or tracked in the frame
- ``landmarks`` float32 [T, P, 2]: landmarks in frame pixels (NaN where not found)
- ``transform`` float32 [T, 2, 3]: affine map from frame to chip pixels
- ``time`` float64 [T]: frame time in seconds
- attributes: fps, chip_size, landmark_model, normalization, affectflow_version, source
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .errors import fail
from .io import atomic_path

DATASETS = ("chips", "normalized", "found", "landmarks", "transform", "time")


@dataclass
class FaceTrack:
    chips: np.ndarray
    normalized: np.ndarray
    found: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    time: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.time)

    def validate(self, where: str | Path = "<faces>") -> None:
        n = len(self.time)
        for name in DATASETS:
            if len(getattr(self, name)) != n:
                raise fail(where, f"dataset {name!r} has {len(getattr(self, name))} rows, time has {n}")
        if self.chips.dtype != np.uint8 or self.chips.ndim != 3:
            raise fail(where, f"chips must be uint8 [T,S,S], got {self.chips.dtype} {self.chips.shape}")


def write_faces(path: str | Path, track: FaceTrack) -> None:
    """Write atomically: a failed write leaves no file at ``path``."""
    import h5py

    track.validate(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            chunk_rows = max(1, min(len(track), 256))
            for name in DATASETS:
                data = np.ascontiguousarray(getattr(track, name))
                chunks = (chunk_rows,) + data.shape[1:] if data.size else None
                h5.create_dataset(name, data=data, chunks=chunks,
                                  compression="gzip" if name == "chips" else None)
            h5.attrs["affectflow_version"] = __version__
            for key, value in track.attrs.items():
                h5.attrs[key] = value


def read_faces(path: str | Path, *, chips: bool = True) -> FaceTrack:
    """Read a face file; ``chips=False`` skips the uint8 chips (training needs only ``normalized``)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise fail(path, "face file not found (run `affectflow align` first)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [name for name in DATASETS if name not in h5]
            if missing:
                raise fail(path, f"not an affectflow face file: missing datasets {missing}")
            data = {name: (h5[name][()] if (chips or name != "chips") else np.empty((0,), np.uint8))
                    for name in DATASETS}
            attrs = dict(h5.attrs)
    except OSError as error:
        raise fail(path, f"unreadable HDF5 file ({error})") from None
    track = FaceTrack(**data, attrs=attrs)
    if chips:
        track.validate(path)
    return track
