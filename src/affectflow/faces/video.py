"""Video decoding with frame timestamps (OpenCV's FFmpeg backend).

Frames are matched to labels by time, never by counting, so every frame comes
with its presentation time; a video that drops frames keeps its labels
aligned. A video that cannot be opened, has no frames, or ends well before its
container says (truncated) is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import fail

# A video may end this many frames short of its header's count before it is called truncated.
TRUNCATION_TOLERANCE_FRAMES = 2


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # as the container header says
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


def _open(path: Path, threads: int | None = None):
    """An opened cv2.VideoCapture; ``threads``: FFmpeg's decoding threads (None: OpenCV's default, all cores)."""
    import cv2

    if not path.is_file():
        raise fail(path, "video not found")
    if threads is None:
        capture = cv2.VideoCapture(str(path))
    else:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, int(threads)])
    if not capture.isOpened():
        raise fail(path, "unreadable video (OpenCV/FFmpeg cannot open it)")
    return capture


def probe(path: str | Path) -> VideoInfo:
    """Header facts of a video, without decoding it."""
    import cv2

    path = Path(path)
    capture = _open(path)
    try:
        info = VideoInfo(
            path=path,
            fps=float(capture.get(cv2.CAP_PROP_FPS)),
            frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if info.fps <= 0 or info.width <= 0 or info.height <= 0:
        raise fail(path, f"unreadable video header (fps={info.fps}, size={info.width}x{info.height})")
    return info


def _frame_time(capture, decoded: int, fps: float) -> float:
    """Time in seconds of the frame just decoded (the ``decoded``-th, from 0)."""
    import cv2

    # POS_MSEC is the time of the frame just decoded; fall back to index/fps if absent.
    msec = capture.get(cv2.CAP_PROP_POS_MSEC)
    return msec / 1000.0 if msec > 0 or decoded == 0 else decoded / fps


def _check_complete(info: VideoInfo, decoded: int) -> None:
    if decoded == 0:
        raise fail(info.path, "video has no decodable frames")
    if decoded < info.frame_count - TRUNCATION_TOLERANCE_FRAMES:
        raise fail(info.path, f"truncated video: decoded {decoded} of {info.frame_count} frames")


def iter_frames(path: str | Path, *, gray: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in seconds, frame) for every decoded frame: BGR uint8 [H,W,3], or gray [H,W].

    Raises if the video has no frames or is truncated (fewer frames decoded
    than its header promises, beyond a small tolerance).
    """
    import cv2

    info = probe(path)
    capture = _open(info.path)
    decoded = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            time = _frame_time(capture, decoded, info.fps)
            decoded += 1
            yield time, (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame)
    finally:
        capture.release()
    _check_complete(info, decoded)


def frame_times(path: str | Path) -> np.ndarray:
    """The time in seconds of every decoded frame (float64 [T]), as :func:`iter_frames` gives them: each
    frame is decoded (so T is the decoded count) but not converted. Raises as :func:`iter_frames` does."""
    info = probe(path)
    capture = _open(info.path)
    times = []
    try:
        while capture.grab():
            times.append(_frame_time(capture, len(times), info.fps))
    finally:
        capture.release()
    _check_complete(info, len(times))
    return np.asarray(times, dtype=np.float64)


def iter_gray_chunks(
    path: str | Path, chunk_frames: int, *, buffers: int = 2, threads: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Decode a video to gray in chunks: (times float64 [n], frames uint8 [n,H,W]), n <= chunk_frames.

    Memory stays bounded for any video length: frames are decoded straight into
    ``buffers`` preallocated chunk buffers, used in turn, so a chunk's ``frames``
    are overwritten once ``buffers`` more chunks have been requested (copy them
    to keep them); ``times`` are new arrays. Gray is OpenCV's ``COLOR_BGR2GRAY``,
    bit for bit, as :func:`iter_frames` ``(gray=True)`` gives it, but computed by
    the native extension in the calling thread (OpenCV's thread pool would spin
    between frames, taking CPU from whatever runs beside the decoder). ``threads``:
    FFmpeg's decoding threads (None: OpenCV's default; 1 decodes with the least CPU
    time, for a caller that keeps the other cores busy). Raises as :func:`iter_frames`
    does, and if the frame size changes within the video.
    """
    from .. import _native

    if chunk_frames < 1 or buffers < 1:
        raise ValueError(f"chunk_frames and buffers must be positive, got {chunk_frames}, {buffers}")
    info = probe(path)
    capture = _open(info.path, threads)
    ring: list[np.ndarray] = []  # allocated at the first frame: its size may differ from the header's
    decoded = 0
    bgr = None
    try:
        while True:
            times = np.empty(chunk_frames, np.float64)
            count = 0
            while count < chunk_frames:
                ok, bgr = capture.read(bgr)  # decodes into the previous frame's array
                if not ok:
                    break
                if not ring:
                    ring = [np.empty((chunk_frames,) + bgr.shape[:2], np.uint8) for _ in range(buffers)]
                frames = ring[decoded // chunk_frames % buffers]
                if bgr.shape[:2] != frames.shape[1:]:
                    raise fail(
                        info.path,
                        f"frame {decoded} is {bgr.shape[1]}x{bgr.shape[0]}, the first "
                        f"{frames.shape[2]}x{frames.shape[1]}: frame size changes are not supported",
                    )
                _native.bgr_to_gray(bgr, frames[count])
                times[count] = _frame_time(capture, decoded, info.fps)
                decoded += 1
                count += 1
            if count:
                yield times[:count].copy(), frames[:count]
            if count < chunk_frames:
                break
    finally:
        capture.release()
    _check_complete(info, decoded)


def read_video(path: str | Path, *, gray: bool = False) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Decode a whole video: (times float64 [T], frames uint8 [T,H,W(,3)], info)."""
    info = probe(path)
    times, frames = [], []
    for time, frame in iter_frames(path, gray=gray):
        times.append(time)
        frames.append(frame)
    return np.asarray(times, dtype=np.float64), np.stack(frames), info
