"""``affectflow align``: video -> per-subject face file (docs/design.md, sections 3 and 4).

Frames are decoded in chunks (bounded memory for any video length), gray, and
aligned by the native aligner (:class:`affectflow._native.Aligner`): dlib's HOG
face detector on the first frame, when tracking is lost and every
``detect_every`` frames (around the tracked face, on a downscaled image where
the face is large), the previous landmarks placing the face box in between.
Tracking is lost when landmarks jump, rescale or turn too much, leave the frame,
or the chip stops correlating with the last detection's chip. While no face is
found the detector runs on every 3rd frame, and a returning face is tracked
backwards to the frames passed over. Detection picks the best-scoring face;
landmarks (5-point by default) map eyes and nose to fixed chip positions
exactly as ``dlib.get_face_chip(img, shape, size, padding=0.25)``. Each chunk
is split into contiguous segments, one thread each. The next chunk decodes
while the current one aligns.

Frames without a face stay in the file with ``found`` False, a zero chip and
NaN landmarks/transform: filling them is a documented choice made downstream,
never here. A video without any face is an error, and nothing is written.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import fail

LANDMARK_MODELS = {5: "shape_predictor_5_face_landmarks.dat", 68: "shape_predictor_68_face_landmarks.dat"}
# A folder holding the .dat models, instead of the face-recognition-models package.
LANDMARK_DIR_VARIABLE = "AFFECTFLOW_LANDMARK_DIR"
CHIP_PADDING = 0.25
DEFAULT_DETECT_EVERY = 10
CHUNK_FRAMES = 256


def landmark_model_path(landmarks: int = 5) -> Path:
    """The dlib shape predictor file for 5 or 68 landmarks, located at run time."""
    if landmarks not in LANDMARK_MODELS:
        raise fail(f"--landmarks {landmarks}", "landmark model must be 5 or 68 points")
    folder = os.environ.get(LANDMARK_DIR_VARIABLE)
    if not folder:
        # Not `import face_recognition_models`: its __init__ needs pkg_resources, gone from new setuptools.
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise fail("face_recognition_models", "package not installed (pip install face-recognition-models==0.3.0)")
        folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    path = Path(folder) / LANDMARK_MODELS[landmarks]
    if not path.is_file():
        raise fail(path, f"{landmarks}-point landmark model not found")
    return path


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _chunks(video: Path, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from .video import iter_frames

    times: list[float] = []
    frames: list[np.ndarray] = []
    for time_s, frame in iter_frames(video, gray=True):
        times.append(time_s)
        frames.append(frame)
        if len(frames) == size:
            yield np.asarray(times), np.stack(frames)
            times, frames = [], []
    if frames:
        yield np.asarray(times), np.stack(frames)


def _prefetched(chunks: Iterator):
    """Decode the next chunk in a helper thread while the caller aligns this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while True:
            chunk = pending.result()
            if chunk is None:
                return
            pending = pool.submit(next, chunks, None)
            yield chunk


def align_video(
    video_path: str | os.PathLike,
    *,
    landmarks: int = 5,
    chip_size: int = 96,
    normalization: str = "gcn",
    detect_every: int = DEFAULT_DETECT_EVERY,
    tracking: bool = True,
    threads: int | None = None,
    progress: bool = True,
):
    """Align every frame of a video; returns a :class:`affectflow.faces.FaceTrack`.

    ``normalized`` is float16 (the face file's type) by :func:`affectflow.normalize.normalize_chips`.
    """
    from tqdm import tqdm

    from . import _native
    from .faces import FaceTrack
    from .normalize import METHODS, normalize_chips
    from .video import probe

    video = Path(video_path)
    if normalization not in METHODS:
        raise fail(video, f"unknown normalization {normalization!r} (one of {', '.join(METHODS)})")
    if chip_size < 16:
        raise fail(video, f"chip size {chip_size} is too small (at least 16)")
    if detect_every < 1:
        raise fail(video, f"detect_every must be at least 1, got {detect_every}")
    model = landmark_model_path(landmarks)
    info = probe(video)
    threads = threads or default_threads()
    try:
        aligner = _native.Aligner(str(model), chip_size=chip_size, padding=CHIP_PADDING, tracking=tracking,
                                  detect_every=detect_every, threads=threads)
    except ValueError as error:
        raise fail(model, str(error)) from None

    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("time", "chips", "found", "landmarks", "transform")}
    started = time.perf_counter()
    with tqdm(total=info.frame_count or None, unit="frame", desc=f"align {video.name}", disable=not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for times, frames in _prefetched(_chunks(video, CHUNK_FRAMES)):
            result = aligner.process(frames)
            parts["time"].append(times)
            for name in ("chips", "found", "landmarks", "transform"):
                parts[name].append(result[name])
            bar.update(len(frames))
    data = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    found = data["found"]
    if not found.any():
        raise fail(video, f"no face found in any of its {len(found)} frames")
    normalized = normalize_chips(data["chips"], normalization, dtype=np.float16, threads=threads)
    elapsed = time.perf_counter() - started
    return FaceTrack(
        chips=data["chips"],
        normalized=normalized,
        found=found,
        landmarks=data["landmarks"],
        transform=data["transform"],
        time=data["time"],
        attrs={
            "fps": float(info.fps),
            "chip_size": int(chip_size),
            "chip_padding": CHIP_PADDING,
            "landmark_model": model.stem,
            "landmarks": int(landmarks),
            "normalization": normalization,
            "source": str(video),
            "tracking": bool(tracking),
            "detect_every": int(detect_every),
            "detections_run": int(aligner.detections_run),
            "found_fraction": float(found.mean()),
            "align_seconds": float(elapsed),
        },
    )


def summary_line(track, video: Path) -> str:
    frames = len(track)
    seconds = track.attrs["align_seconds"]
    return (f"{video}: {frames} frames, found {100.0 * track.found.mean():.1f} %, "
            f"{track.attrs['detections_run']} detections run, {frames / max(seconds, 1e-9):.1f} frames/s")


def _cmd_align(args) -> int:
    from .faces import write_faces

    track = align_video(
        args.video,
        landmarks=args.landmarks,
        chip_size=args.chip_size,
        normalization=args.normalization,
        detect_every=args.detect_every,
        tracking=not args.no_tracking,
        threads=args.threads,
        progress=not args.quiet,
    )
    write_faces(args.output, track)
    print(summary_line(track, args.video))
    return 0


def add_commands(subparsers) -> None:
    from .normalize import METHODS

    parser = subparsers.add_parser(
        "align",
        help="detect, track and align the face in every frame of a video",
        description="Write the per-subject face file (chips, normalized chips, found, landmarks, transform, "
        "time) of a video: dlib HOG detection + landmark tracking, chips aligned as dlib.get_face_chip.",
    )
    parser.add_argument("video", type=Path, help="input video")
    parser.add_argument("-o", "--output", required=True, type=Path, help="face file to write (.h5)")
    parser.add_argument("--threads", type=int, default=None, help="aligner threads (default: all available cores)")
    parser.add_argument("--landmarks", type=int, choices=(5, 68), default=5, help="landmark model (default 5)")
    parser.add_argument("--chip-size", type=int, default=96, help="chip width and height in pixels (default 96)")
    parser.add_argument("--normalization", choices=METHODS, default="gcn",
                        help="chip normalization stored as 'normalized' (default gcn)")
    parser.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY,
                        help=f"re-run the face detector at least every K frames (default {DEFAULT_DETECT_EVERY})")
    parser.add_argument("--no-tracking", action="store_true", help="run the detector on every frame")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_cmd_align)
