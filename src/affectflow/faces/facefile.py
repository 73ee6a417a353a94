"""The per-subject face file ``results/faces/{subject}.h5`` (docs/design.md, section 3).

One row per video frame, frames without a face included (``found`` False) so
that frames and labels stay aligned by time:

- ``chips`` uint8 [T, S, S]: aligned grayscale crops
- ``normalized`` float16 [T, S, S]: mean-subtracted, contrast-normalized chips
- ``found`` bool [T]: a face was detected or tracked in the frame
- ``source`` uint8 [T]: where the frame's face comes from, an index into :data:`SOURCES`:
  0 ``lost`` (no face), 1 ``detected`` (the face detector found it in this frame),
  2 ``tracked`` (placed by a neighbouring frame's landmarks), 3 ``release`` (Aff-Wild2's own crop)
- ``score`` float32 [T]: the face detector's score where ``source`` is ``detected``, NaN elsewhere
  (dlib's HOG detection confidence, as the detector ran: around the tracked face or on a
  downscaled frame, so comparable within a file rather than with other detectors)
- ``landmarks`` float32 [T, P, 2]: landmarks in frame pixels (NaN where not found)
- ``transform`` float32 [T, 2, 3]: affine map from frame to chip pixels
- ``time`` float64 [T]: frame time in seconds
- attributes: fps, chip_size, landmark_model, normalization, affectflow_version, source (the video),
  face_rule, and what the detector did: detections_run (the frames it ran on), region_searches and
  frame_searches (around the tracked face, of the whole frame; csrc/aligner.h states how they add up)

Files written before ``source`` and ``score`` existed still read: their ``source``
is derived from ``found`` (``tracked`` where found, which is what most such frames
were, ``lost`` elsewhere; which frames the detector found is not recorded there),
``score`` is all NaN, and the track's attribute ``face_source_derived`` is True.

Writing goes through :func:`face_writer` (chunk by chunk, for videos of any
length; :func:`write_faces` writes a whole track through it): resizable, chunked
HDF5 datasets in a temporary file that replaces the target only when complete.
Nothing is compressed: gzip saved about a fifth of the chips (face texture is
noisy) and cost more time than aligning them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import fail
from ..io import atomic_path

SOURCES = ("lost", "detected", "tracked", "release")  # release: Aff-Wild2's own crop (affectflow.faces.release)
LOST, DETECTED, TRACKED, RELEASE = range(len(SOURCES))
DATASETS = ("chips", "normalized", "found", "source", "score", "landmarks", "transform", "time")
# What face files written before `source` and `score` hold (still readable).
REQUIRED_DATASETS = ("chips", "normalized", "found", "landmarks", "transform", "time")
# Rows per HDF5 chunk, at most: a writer's chunks are its first append's rows (the aligner's
# chunk), up to this, so that appends fill whole chunks.
CHUNK_ROWS = 256


def legacy_source(found: np.ndarray) -> np.ndarray:
    """``source`` for data without one: ``tracked`` where found, ``lost`` elsewhere."""
    return np.where(np.asarray(found, bool), TRACKED, LOST).astype(np.uint8)


@dataclass
class FaceTrack:
    chips: np.ndarray
    normalized: np.ndarray
    found: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    time: np.ndarray
    attrs: dict = field(default_factory=dict)
    source: np.ndarray | None = None  # uint8 [T] index into SOURCES; None: derived from found
    score: np.ndarray | None = None  # float32 [T]; None: all NaN

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = legacy_source(self.found)
        if self.score is None:
            self.score = np.full(len(self.found), np.nan, np.float32)

    def __len__(self) -> int:
        return len(self.time)

    def validate(self, where: str | Path = "<faces>") -> None:
        n = len(self.time)
        for name in DATASETS:
            if len(getattr(self, name)) != n:
                raise fail(where, f"dataset {name!r} has {len(getattr(self, name))} rows, time has {n}")
        if self.chips.dtype != np.uint8 or self.chips.ndim != 3:
            raise fail(where, f"chips must be uint8 [T,S,S], got {self.chips.dtype} {self.chips.shape}")
        source = np.asarray(self.source)
        if source.dtype != np.uint8 or source.ndim != 1 or (source >= len(SOURCES)).any():
            raise fail(where, f"source must be uint8 [T] codes below {len(SOURCES)} ({', '.join(SOURCES)})")
        if not np.array_equal(source != LOST, np.asarray(self.found, bool)):
            raise fail(where, "source and found disagree (source is 'lost' exactly where found is False)")


def _as_written(track: FaceTrack, name: str) -> np.ndarray:
    data = np.asarray(getattr(track, name))
    if name == "source":
        data = data.astype(np.uint8, copy=False)
    elif name == "score":
        data = data.astype(np.float32, copy=False)
    return np.ascontiguousarray(data)


class FaceWriter:
    """Appends tracks (chunks of one video's rows) to an open face file; see :func:`face_writer`."""

    def __init__(self, h5, path: Path, chunk_rows: int) -> None:
        self._h5 = h5
        self._path = path
        self._chunk_rows = chunk_rows
        self.rows = 0
        self.attrs: dict = {}  # written when the file is complete

    def append(self, track: FaceTrack) -> None:
        track.validate(self._path)
        n = len(track)
        if n == 0:
            return
        for name in DATASETS:
            data = _as_written(track, name)
            if name not in self._h5:
                rows = max(1, min(self._chunk_rows, n))
                self._h5.create_dataset(
                    name,
                    shape=(0,) + data.shape[1:],
                    maxshape=(None,) + data.shape[1:],
                    dtype=data.dtype,
                    chunks=(rows,) + data.shape[1:],
                )
            dataset = self._h5[name]
            if dataset.shape[1:] != data.shape[1:] or dataset.dtype != data.dtype:
                raise fail(
                    self._path,
                    f"{name}: rows of {data.dtype} {data.shape[1:]} after rows of {dataset.dtype} {dataset.shape[1:]}",
                )
            dataset.resize(self.rows + n, axis=0)
            dataset[self.rows :] = data
        self.rows += n

    def _finish(self) -> None:
        if self.rows == 0:
            raise fail(self._path, "no frames to write")
        self._h5.attrs["affectflow_version"] = __version__
        for key, value in self.attrs.items():
            self._h5.attrs[key] = value


@contextlib.contextmanager
def face_writer(path: str | Path, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[FaceWriter]:
    """Write a face file chunk by chunk; ``writer.attrs`` becomes its attributes.

    The file appears at ``path`` only when the block ends without an error (a
    temporary file beside it is removed otherwise), so a failed run leaves no file.
    Memory stays that of one chunk, whatever the video's length.
    """
    import h5py

    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            writer = FaceWriter(h5, path, chunk_rows)
            yield writer
            writer._finish()


def write_faces(path: str | Path, track: FaceTrack) -> None:
    """Write atomically: a failed write leaves no file at ``path``."""
    track.validate(path)
    with face_writer(path) as writer:
        writer.append(track)
        writer.attrs.update(track.attrs)


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator:
    """A face file opened for reading, with the checks every reader makes: it exists, it is HDF5,
    it holds the datasets every face file has."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise fail(path, "face file not found (run `affectflow align` first)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise fail(path, f"unreadable HDF5 file ({error})") from None
    with h5:
        missing = [name for name in REQUIRED_DATASETS if name not in h5]
        if missing:
            raise fail(path, f"not an affectflow face file: missing datasets {missing}")
        try:
            problem = structure_problem(h5)
            if problem:
                raise fail(path, problem)
            yield h5
        except OSError as error:  # a dataset that cannot be read
            raise fail(path, f"unreadable HDF5 file ({error})") from None


# Each dataset's element types and its shape after the frame axis (None: any size there).
DATASET_LAYOUT = {
    "chips": ("u", (None, None)),
    "normalized": ("f", (None, None)),
    "found": ("b", ()),
    "source": ("u", ()),
    "score": ("f", ()),
    "landmarks": ("f", (None, 2)),
    "transform": ("f", (2, 3)),
    "time": ("f", ()),
}


def structure_problem(h5) -> str | None:
    """What is wrong with an opened face file's layout (named by dataset or attribute), or None: every
    reader (read_faces, face_chunks, alignment_settings) checks it, whatever it goes on to read. The
    times are read whole (8 bytes a frame) to check that they are finite and increasing."""
    import h5py

    frames = None
    for name, (kinds, tail) in DATASET_LAYOUT.items():
        if name not in h5:
            continue
        data = h5[name]
        if not isinstance(data, h5py.Dataset):
            return f"{name} is not a dataset"
        if data.dtype.kind not in kinds and not (name == "found" and data.dtype.kind == "u"):
            return f"dataset {name} holds {data.dtype}, not {'uint8' if kinds == 'u' else kinds}"
        shape = data.shape
        if len(shape) != 1 + len(tail) or any(want is not None and got != want for got, want in zip(shape[1:], tail)):
            expected = ", ".join(["frames", *("any" if w is None else str(w) for w in tail)])
            return f"dataset {name} has shape {shape}, expected [{expected}]"
        frames = shape[0] if frames is None else frames
        if shape[0] != frames:
            return f"dataset {name} has {shape[0]} rows, chips has {frames}"
    size = h5["chips"].shape
    if size[1] != size[2] or size[1] < 1:
        return f"dataset chips holds {size[1]}x{size[2]} chips, not square ones"
    if h5["chips"].dtype != np.uint8 or ("source" in h5 and h5["source"].dtype != np.uint8):
        return "datasets chips and source must hold uint8"
    if "source" in h5 and (h5["source"][()] >= len(SOURCES)).any():  # 1 byte a frame
        return f"dataset source holds codes beyond {len(SOURCES) - 1} ({', '.join(SOURCES)})"
    time = h5["time"][()]
    if len(time) and (not np.isfinite(time).all() or (np.diff(time) <= 0).any()):
        return "dataset time is not finite and strictly increasing"
    fps = h5.attrs.get("fps")
    if fps is not None and (not isinstance(fps, (int, float, np.number)) or not np.isfinite(fps) or fps <= 0):
        return f"attribute fps {fps!r} is not a positive number of frames per second"
    return None


def _attrs(h5) -> dict:
    attrs = dict(h5.attrs)
    if "source" not in h5:  # written before per-frame sources were recorded
        attrs["face_source_derived"] = True
    return attrs


def read_faces(path: str | Path, *, chips: bool = True) -> FaceTrack:
    """Read a face file; ``chips=False`` skips the uint8 chips (training needs only ``normalized``)."""
    with _opened(path) as h5:
        data = {
            name: (h5[name][()] if (chips or name != "chips") else np.empty((0,), np.uint8))
            for name in DATASETS
            if name in h5
        }
        attrs = _attrs(h5)
    track = FaceTrack(**data, attrs=attrs)
    if chips:
        track.validate(path)
    return track


@contextlib.contextmanager
def face_chunks(path: str | Path, rows: int, names: tuple[str, ...]) -> Iterator[tuple[dict, int, Iterator[dict]]]:
    """(attrs, frames, {name: array} of the datasets `names` for up to `rows` frames at a time, in
    order), read as they are consumed: bounded memory for any video length, and no dataset read that
    the caller does not need. The checks and attrs are read_faces'; a file without `source` or
    `score` gets them as FaceTrack derives them (attrs say `face_source_derived`)."""
    with _opened(path) as h5:
        attrs, total = _attrs(h5), len(h5["time"])

        def chunks() -> Iterator[dict]:
            for begin in range(0, total, rows):
                end = min(begin + rows, total)
                chunk = {name: h5[name][begin:end] for name in names if name in h5}
                if "source" in names and "source" not in chunk:
                    chunk["source"] = legacy_source(h5["found"][begin:end])
                if "score" in names and "score" not in chunk:
                    chunk["score"] = np.full(end - begin, np.nan, np.float32)
                yield chunk

        yield attrs, total, chunks()


# The face file attributes that say how its chips were made: training refuses files that differ in any,
# and a model file records them so that new videos are aligned the same way.
ALIGNMENT_SETTINGS = ("chip_size", "landmarks", "landmark_model", "detect_every", "tracking")


def alignment_settings(path: str | Path) -> dict:
    """A face file's alignment settings (ALIGNMENT_SETTINGS) as plain values; the chip size from the chips."""
    with _opened(path) as h5:
        attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        attrs["chip_size"] = int(h5["chips"].shape[1])
    return {key: attrs.get(key) for key in ALIGNMENT_SETTINGS}


def common_alignment_settings(paths: list[Path]) -> dict:
    """The alignment settings every face file of `paths` shares; an error naming two files that differ."""
    first = alignment_settings(paths[0])
    for path in paths[1:]:
        other = alignment_settings(path)
        differ = [f"{k} {first[k]!r} vs {other[k]!r}" for k in ALIGNMENT_SETTINGS if other[k] != first[k]]
        if differ:
            raise fail(path, f"aligned differently from {paths[0]} ({'; '.join(differ)}): align them alike")
    return first


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
