"""Video decoding with frame timestamps (OpenCV's FFmpeg backend).

Frames are matched to labels by time, never by counting, so every frame comes
with its presentation time; a video that drops frames keeps its labels
aligned. A video that cannot be opened, has no frames, or ends well before its
container says (truncated) is an error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import fail

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


def _open(path: Path):
    import cv2

    if not path.is_file():
        raise fail(path, "video not found")
    capture = cv2.VideoCapture(str(path))
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
            # POS_MSEC is the time of the frame just decoded; fall back to index/fps if absent.
            msec = capture.get(cv2.CAP_PROP_POS_MSEC)
            time = msec / 1000.0 if msec > 0 or decoded == 0 else decoded / info.fps
            decoded += 1
            yield time, (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if gray else frame)
    finally:
        capture.release()
    if decoded == 0:
        raise fail(info.path, "video has no decodable frames")
    if decoded < info.frame_count - TRUNCATION_TOLERANCE_FRAMES:
        raise fail(info.path, f"truncated video: decoded {decoded} of {info.frame_count} frames")


def read_video(path: str | Path, *, gray: bool = False) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """Decode a whole video: (times float64 [T], frames uint8 [T,H,W(,3)], info)."""
    info = probe(path)
    times, frames = [], []
    for time, frame in iter_frames(path, gray=gray):
        times.append(time)
        frames.append(frame)
    return np.asarray(times, dtype=np.float64), np.stack(frames), info
