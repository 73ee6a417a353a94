"""Streamed CNN training data: batches of raw uint8 chips read from the face files through a bounded buffer.

`train-cnn` holds every training chip in one device tensor when they fit (the in-memory path); a
corpus the size of Aff-Wild2 (2.8 M frames of 96x96 = 26 GB) does not, so `train-cnn --stream`
(chosen automatically when the chips of the given face files exceed `--memory-budget-gb`) serves
the same training frames from the face files instead, with memory bounded by the buffer, whatever
the corpus' size:

- **Training frame index** (small, held in memory): per training recording the rows that train (a
  face found, a label, every `--frame-stride`-th) and their labels (float32). The fill policy plays no
  part: only found frames train.
- **Chunks**: each recording's rows cut into row ranges of `chunk_rows` frames ([k*R, (k+1)*R)); a
  chunk is read as ONE contiguous slice of the `chips` dataset (HDF5 chunked by rows), never frame by
  frame, and only its training rows are kept.
- **Shuffle, each epoch**: a fresh random permutation of all chunks (of every recording); the chunks
  are read in that order, `buffer_chunks` (K) at a time into a buffer, and the buffer's frames are
  served in a fresh random order. Every training frame is served exactly once per epoch. Two frames
  can share a batch only if their chunks share a buffer: a local shuffle, whose effect on the training
  loss `bench/stream.py` measures against the full in-memory shuffle.
- **Memory**: at most two buffers (the one served, the next one read ahead by one thread) of
  K x R frames each; the defaults (R = 1024, K = 16) hold 2 x 16384 chips, 302 MB at 96x96.
- **Determinism**: an epoch's whole order comes from one seed that the trainer draws from torch's
  seeded global generator at the epoch's start (its state is in the checkpoint at every epoch
  boundary), so a seeded run repeats on CPU and a resumed run equals an uninterrupted one; the
  read-ahead thread draws from that epoch's own generator only, in buffer order.

Evaluation recordings (`ChunkedRecording`) are read chunk by chunk too, filled under the fill policy
across chunks (affectflow.data.fill.ChunkFill): the CNN scores frames independently, so chunked
prediction equals whole-recording prediction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import STREAM_BUFFER_CHUNKS, STREAM_CHUNK_ROWS

# (their one definition: affectflow.learning.settings, which the parser reads without numpy)
CHUNK_ROWS, BUFFER_CHUNKS = STREAM_CHUNK_ROWS, STREAM_BUFFER_CHUNKS


def frame_index(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A face file's (time float64 [T], found bool [T], chips' shape) without reading its chips."""
    import h5py

    from ..faces.facefile import face_chunks

    with face_chunks(path, 1 << 62, ("time", "found")) as (_attrs, total, chunks):
        data = next(chunks, {"time": np.zeros(0), "found": np.zeros(0, bool)})
    with h5py.File(path, "r") as h5:
        shape = tuple(h5["chips"].shape)
    return np.asarray(data["time"], np.float64), np.asarray(data["found"], bool), shape


def chips_bytes(paths: list[Path]) -> int:
    """The bytes of the `chips` of these face files: what the in-memory path loads."""
    total = 0
    for path in paths:
        shape = frame_index(path)[2]
        total += int(np.prod(shape))
    return total


def choose_data_path(paths: list[Path], stream: bool, budget_gb: float) -> tuple[bool, dict]:
    """(stream?, run.json's `data_path`): stream when asked or when the chips of the face files `paths`
    (what the in-memory path loads) exceed `budget_gb`."""
    loaded = chips_bytes(paths)
    streamed = bool(stream) or loaded > budget_gb * 1e9
    if stream:
        reason = "--stream"
    elif streamed:
        reason = f"chips above --memory-budget-gb {budget_gb:g}"
    else:
        reason = f"chips within --memory-budget-gb {budget_gb:g}"
    return streamed, {"path": "streamed" if streamed else "in-memory", "reason": reason, "chips_bytes": loaded}


def streamed_frames(paths: dict, every: int, chunk_rows: int = CHUNK_ROWS) -> dict:
    """{subject: recordings.SubjectFrames} of face files {subject: path} whose data (the chips) stay in the
    file (a ChunkedRecording of every `every`-th frame); time and found are read."""
    from .recordings import SubjectFrames

    frames = {}
    for subject, path in paths.items():
        time, found, _shape = frame_index(path)
        frames[subject] = SubjectFrames(subject, time, found, ChunkedRecording(path, 0, every, chunk_rows))
    return frames


def found_descriptors(path: str | Path, found: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """label_shift.descriptor_from_chips of a face file's found frames, read chunk by chunk (the shift fit)."""
    from ..data.label_shift import descriptor_from_chips

    chunks = found_chips(path, np.flatnonzero(found), chunk_rows)
    parts = [descriptor_from_chips(c.astype(np.float32) / 255) for c in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, 144), np.float32)


def found_chips(path: str | Path, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """The chips of the (sorted) `rows` of a face file, chunk by chunk (contiguous reads)."""
    import h5py

    rows = np.asarray(rows, np.int64)
    with h5py.File(path, "r") as h5:
        chips = h5["chips"]
        for begin in range(0, len(chips), chunk_rows):
            end = min(begin + chunk_rows, len(chips))
            lo, hi = np.searchsorted(rows, [begin, end])
            if hi > lo:
                yield chips[begin:end][rows[lo:hi] - begin]


@dataclass(frozen=True)
class Chunk:
    recording: int  # index into TrainingStream.paths
    begin: int  # first row of the contiguous slice read
    end: int
    rows: np.ndarray  # training rows in [begin, end), relative to begin
    labels: np.ndarray  # float32, one per row


class TrainingStream:
    """The training frames of some face files, served in batches through a bounded shuffle buffer.

    `rows[i]` are the training rows of `paths[i]` (sorted), `labels[i]` their targets. epoch(seed)
    yields (chips uint8 [B,S,S], labels float32 [B]) numpy batches covering every frame once.
    """

    def __init__(
        self,
        paths: list[Path],
        rows: list[np.ndarray],
        labels: list[np.ndarray],
        batch_size: int,
        chunk_rows: int = CHUNK_ROWS,
        buffer_chunks: int = BUFFER_CHUNKS,
        prefetch: bool = True,
    ) -> None:
        if chunk_rows < 1 or buffer_chunks < 1 or batch_size < 1:
            raise ValueError("chunk_rows, buffer_chunks and batch_size must be >= 1")
        self.paths = [Path(p) for p in paths]
        self.batch_size, self.chunk_rows, self.buffer_chunks, self.prefetch = (
            batch_size,
            chunk_rows,
            buffer_chunks,
            prefetch,
        )
        self.chunks: list[Chunk] = []
        for i, (r, y) in enumerate(zip(rows, labels)):
            r = np.asarray(r, np.int64)
            y = np.asarray(y, np.float32)
            if len(r) != len(y):
                raise ValueError(f"{self.paths[i]}: {len(r)} rows, {len(y)} labels")
            for k in np.unique(r // chunk_rows):
                begin = int(k) * chunk_rows
                keep = (r >= begin) & (r < begin + chunk_rows)
                sel = r[keep]
                self.chunks.append(Chunk(i, begin, int(sel[-1]) + 1, sel - begin, y[keep]))
        self.frames = sum(len(c.rows) for c in self.chunks)

    def labels(self) -> np.ndarray:
        return np.concatenate([c.labels for c in self.chunks]) if self.chunks else np.zeros(0, np.float32)

    def describe(self) -> dict:
        """The stream's settings for run.json."""
        return {
            "chunk_rows": self.chunk_rows,
            "buffer_chunks": self.buffer_chunks,
            "buffer_frames": self.chunk_rows * self.buffer_chunks,
            "chunks": len(self.chunks),
            "shuffle": "each epoch: a random permutation of the chunks, read K at a time into a buffer "
            "whose frames are served in random order",
        }

    def plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        """An epoch's buffers: the chunk ids of each, in the epoch's random chunk order."""
        order = rng.permutation(len(self.chunks))
        return [order[b : b + self.buffer_chunks] for b in range(0, len(order), self.buffer_chunks)]

    def _read_buffer(self, files: dict, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        import h5py

        xs, ys = [], []
        for i in ids:
            chunk = self.chunks[int(i)]
            if chunk.recording not in files:
                files[chunk.recording] = h5py.File(self.paths[chunk.recording], "r")
            block = files[chunk.recording]["chips"][chunk.begin : chunk.end]  # one contiguous read
            xs.append(block[chunk.rows])
            ys.append(chunk.labels)
        x, y = np.concatenate(xs), np.concatenate(ys)
        perm = rng.permutation(len(y))
        return x[perm], y[perm]

    def epoch(self, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch's batches, in the order that `seed` fixes; the next buffer is read while one is served."""
        rng = np.random.default_rng(seed)
        buffers = self.plan(rng)
        files: dict = {}
        pool = None
        if self.prefetch and len(buffers) > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=1)
        try:

            def read(k):
                return self._read_buffer(files, buffers[k], rng)

            pending = pool.submit(read, 0) if pool else None
            carry_x = carry_y = None
            bs = self.batch_size
            for k in range(len(buffers)):
                x, y = pending.result() if pool else read(k)
                if pool and k + 1 < len(buffers):
                    pending = pool.submit(read, k + 1)
                start = 0
                if carry_x is not None:  # complete the batch that the last buffer left short
                    start = min(bs - len(carry_y), len(y))
                    x0, y0 = np.concatenate([carry_x, x[:start]]), np.concatenate([carry_y, y[:start]])
                    carry_x = carry_y = None
                    if len(y0) < bs:
                        carry_x, carry_y = x0, y0
                        continue
                    yield x0, y0
                full = start + (len(y) - start) // bs * bs
                for b in range(start, full, bs):
                    yield x[b : b + bs], y[b : b + bs]
                if full < len(y):
                    carry_x, carry_y = x[full:].copy(), y[full:].copy()
            if carry_x is not None:
                yield carry_x, carry_y
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
            for h5 in files.values():
                h5.close()


class ChunkedRecording:
    """A recording's filled chips read chunk by chunk from its face file: rows `start`.. of every
    `every`-th frame, filled under the fill policy as if the whole recording had been filled (the last
    found face before `start` carries in)."""

    def __init__(self, path: str | Path, start: int = 0, every: int = 1, chunk_rows: int = CHUNK_ROWS) -> None:
        self.path, self.start, self.every, self.chunk_rows = Path(path), int(start), max(1, int(every)), chunk_rows

    def chunks(self) -> Iterator[np.ndarray]:
        import h5py

        from ..data.fill import ChunkFill

        fill = ChunkFill()
        with h5py.File(self.path, "r") as h5:
            chips, found = h5["chips"], h5["found"]
            total = len(chips)
            if self.start > 0:
                before = np.flatnonzero(found[: self.start])
                if len(before):
                    fill.last = chips[int(before[-1])].copy()
            for begin in range(self.start, total, self.chunk_rows):
                end = min(begin + self.chunk_rows, total)
                filled = fill(chips[begin:end], found[begin:end])
                yield filled[(self.every - (begin - self.start) % self.every) % self.every :: self.every]
