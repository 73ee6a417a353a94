"""``affectflow align``: video -> per-subject face file (docs/design.md, sections 3 and 4).

Frames are decoded in chunks, gray, and aligned by the native aligner
(:class:`affectflow._native.Aligner`): dlib's HOG face detector on the first
frame, when tracking is lost and every ``detect_every`` frames (around the
tracked face, at the scale of its last size), the previous landmarks placing
the face box in between. Tracking is lost when landmarks jump, rescale or turn
too much, leave the frame, or the chip stops correlating with the last
detection's chip. While no face is found the detector runs on every 3rd frame
at first, then less and less often (down to every 12th), on the frame
downscaled to the last face's size and every 5th time at full resolution; a
returning face is tracked backwards to the frames passed over. Where the whole
frame is searched, the face rule (``face``, :data:`affectflow.contracts.FACE_RULES`)
picks the face among the detections: ``best`` the detector's best score,
``left``/``right`` the leftmost/rightmost box centre in the full frame (one of
two people side by side); searches around the tracked face keep the person
being tracked. Landmarks (5-point by default) map eyes and nose to
fixed chip positions exactly as ``dlib.get_face_chip(img, shape, size,
padding=0.25)``. Every frame records where its face comes from (``source``:
lost, detected, tracked) and, where detected, the detector's score.

Streaming, for videos of any length: :func:`iter_aligned_chunks` yields the
aligned rows chunk by chunk (memory: a few chunks, whatever the length), and
``affectflow align`` writes them to the face file as they come, through a
temporary file that replaces the target only once complete;
:func:`align_video` returns a whole video's :class:`affectflow.faces.facefile.FaceTrack`
for callers that want it in memory. Of ``threads`` cores, one decodes the next
chunk while the others align the current one (one segment of it per thread).

Frames without a face stay in the file with ``found`` False, a zero chip and
NaN landmarks/transform: filling them is a documented choice made downstream,
never here. A video without any face is an error, and nothing is written.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..contracts import FACE_RULES, LANDMARK_POINTS, NORMALIZATIONS, chip_size_problem
from ..errors import fail
from ..io import OutputPath
from ..options import add_quiet, add_threads, positive_int
from .landmark_models import landmark_model_path
from .settings import DEFAULT_ALIGN_SETTINGS, AlignSettings

DEFAULTS = DEFAULT_ALIGN_SETTINGS  # the parser's defaults are the settings' own

CHIP_PADDING = 0.25
# Frames are decoded and aligned in chunks of about CHUNK_BYTES of gray pixels (two are held:
# one aligning, one decoding), of CHUNK_FRAMES frames at most and MIN_CHUNK_FRAMES at least.
CHUNK_BYTES = 32 << 20
CHUNK_FRAMES = 256
MIN_CHUNK_FRAMES = 32
# Frames up to this many pixels are decoded by FFmpeg in one thread (it keeps pace with the
# aligner, at the least CPU time in all); larger ones, where decoding outweighs aligning, in several.
SINGLE_THREAD_DECODE_PIXELS = 640 * 480


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def chunk_frames_for(width: int, height: int) -> int:
    """Frames per decoded chunk: about CHUNK_BYTES of gray frames, within [MIN_CHUNK_FRAMES, CHUNK_FRAMES]."""
    frame_bytes = max(1, int(width) * int(height))
    return int(max(MIN_CHUNK_FRAMES, min(CHUNK_FRAMES, CHUNK_BYTES // frame_bytes)))


def _prefetched(chunks: Iterator):
    """Decode the next chunk in a helper thread while the caller aligns this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="affectflow-decode") as pool:
        pending = pool.submit(next, chunks, None)
        while True:
            chunk = pending.result()
            if chunk is None:
                return
            pending = pool.submit(next, chunks, None)
            yield chunk


class AlignedChunks:
    """A video aligned chunk by chunk: iterate for :class:`affectflow.faces.facefile.FaceTrack` chunks.

    Each chunk holds consecutive frames' rows (time, chips, normalized, found,
    source, score, landmarks, transform); memory stays that of a few chunks for
    any video length. :attr:`attrs` holds the face file's attributes, complete
    (frame counts, detections run, seconds) once the iteration has ended. A video
    without any face raises after its last chunk, so a writer fed from the chunks
    (:func:`affectflow.faces.facefile.face_writer`) publishes nothing. Iterate once.
    """

    def __init__(
        self,
        video: Path,
        settings: AlignSettings,
        *,
        threads: int | None,
        progress: bool,
        chunk_frames: int | None,
        aligners: dict | None = None,
    ) -> None:
        from .. import _native
        from .video import probe

        self.video = video
        self.settings = settings
        problem = settings.problem()
        if problem:
            raise fail(video, problem)
        if threads is not None and threads < 1:
            raise fail(video, f"threads must be at least 1, got {threads}")
        if chunk_frames is not None and chunk_frames < 1:
            raise fail(video, f"chunk_frames must be at least 1, got {chunk_frames}")
        model = landmark_model_path(settings.landmarks)
        self.info = probe(video)
        # `threads` cores in all: one decodes (see _chunks), the others align.
        self.threads = threads or default_threads()
        self.align_threads = max(1, self.threads - 1)
        large = self.info.width * self.info.height > SINGLE_THREAD_DECODE_PIXELS
        self.decode_threads = self.threads if large else 1
        self.normalization = settings.normalization
        self.progress = progress
        self.chunk_frames = chunk_frames or chunk_frames_for(self.info.width, self.info.height)
        # A batch of videos shares one aligner per setting (`aligners`): reading the landmark model
        # takes longer than aligning a short clip. reset() forgets the last video's face and counts.
        key = (str(model), settings, self.align_threads)
        self.aligner = aligners.get(key) if aligners is not None else None
        if self.aligner is not None:
            self.aligner.reset()
        else:
            try:
                self.aligner = _native.Aligner(
                    str(model),
                    chip_size=settings.chip_size,
                    padding=CHIP_PADDING,
                    face_rule=settings.face,
                    tracking=settings.tracking,
                    detect_every=settings.detect_every,
                    threads=self.align_threads,
                )
            except ValueError as error:
                raise fail(model, str(error)) from None
            if aligners is not None:
                aligners[key] = self.aligner
        self.frames = 0
        self.found_frames = 0
        self.seconds = 0.0
        self.attrs: dict = {
            "fps": float(self.info.fps),
            "chip_size": int(settings.chip_size),
            "chip_padding": CHIP_PADDING,
            "landmark_model": model.stem,
            "landmarks": int(settings.landmarks),
            "normalization": settings.normalization,
            "source": str(video),
            "tracking": bool(settings.tracking),
            "detect_every": int(settings.detect_every),
            "face_rule": settings.face,
        }
        self._started = False

    def __iter__(self) -> Iterator:
        if self._started:
            raise RuntimeError("AlignedChunks can be iterated once")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator:
        from tqdm import tqdm

        from .facefile import FaceTrack
        from .normalize import normalize_chips
        from .video import iter_gray_chunks

        started = time.perf_counter()
        # A helper thread decodes the next chunk into one gray buffer while the aligner reads the
        # other (chunk size: bounded memory, few enough chunks that their overhead stays small).
        chunks = iter_gray_chunks(self.video, self.chunk_frames, buffers=2, threads=self.decode_threads)
        decoded = _prefetched(chunks)
        with tqdm(
            total=self.info.frame_count or None,
            unit="frame",
            desc=f"align {self.video.name}",
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:
            for times, frames in decoded:
                result = self.aligner.process(frames)
                chips = result["chips"]
                chunk = FaceTrack(
                    chips=chips,
                    # one thread: a chunk's chips take milliseconds, and OpenMP's idle threads would spin
                    normalized=normalize_chips(chips, self.normalization, dtype=np.float16, threads=1),
                    found=result["found"],
                    source=result["source"],
                    score=result["score"],
                    landmarks=result["landmarks"],
                    transform=result["transform"],
                    time=times,
                )
                self.frames += len(times)
                self.found_frames += int(chunk.found.sum())
                self._update_attrs(started)
                bar.update(len(times))
                yield chunk
        self._update_attrs(started)
        if not self.found_frames:
            raise fail(self.video, f"no face found in any of its {self.frames} frames")

    def _update_attrs(self, started: float) -> None:
        self.seconds = time.perf_counter() - started
        self.attrs.update(
            {
                # what the detector did (the native Aligner's counters; their invariant is in csrc/aligner.h)
                "detections_run": int(self.aligner.detections_run),
                "region_searches": int(self.aligner.region_searches),
                "frame_searches": int(self.aligner.frame_searches),
                "found_fraction": float(self.found_frames / max(1, self.frames)),
                "align_seconds": float(self.seconds),
            }
        )


def iter_aligned_chunks(
    video_path: str | os.PathLike,
    settings: AlignSettings = DEFAULT_ALIGN_SETTINGS,
    *,
    threads: int | None = None,
    progress: bool = False,
    chunk_frames: int | None = None,
    aligners: dict | None = None,
) -> AlignedChunks:
    """Align a video chunk by chunk (bounded memory): an iterable of FaceTrack chunks, see :class:`AlignedChunks`.

    The settings are checked (and the landmark model loaded) here, before any frame is decoded;
    ``chunk_frames`` defaults to :func:`chunk_frames_for` the video's frame size. ``aligners``, a dict
    the caller keeps across videos, shares one native aligner per setting between them.
    """
    return AlignedChunks(
        Path(video_path), settings, threads=threads, progress=progress, chunk_frames=chunk_frames, aligners=aligners
    )


def align_video(
    video_path: str | os.PathLike,
    settings: AlignSettings = DEFAULT_ALIGN_SETTINGS,
    *,
    threads: int | None = None,
    progress: bool = True,
):
    """Align every frame of a video; returns a :class:`affectflow.faces.facefile.FaceTrack` (the whole video in memory).

    The chunks of :func:`iter_aligned_chunks`, concatenated; ``normalized`` is float16 (the
    face file's type) by :func:`affectflow.faces.normalize.normalize_chips`.
    """
    from .facefile import DATASETS, FaceTrack

    chunks = iter_aligned_chunks(video_path, settings, threads=threads, progress=progress)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in DATASETS}
    for chunk in chunks:
        for name in DATASETS:
            parts[name].append(getattr(chunk, name))
    return FaceTrack(**{name: np.concatenate(arrays) for name, arrays in parts.items()}, attrs=dict(chunks.attrs))


def summary_line(track, video: Path) -> str:
    """One line on an aligned video: ``track`` is a FaceTrack, or the AlignedChunks it was written from."""
    attrs = track.attrs
    frames = track.frames if isinstance(track, AlignedChunks) else len(track)
    seconds = attrs["align_seconds"]
    return (
        f"{video}: {frames} frames, found {100.0 * attrs['found_fraction']:.1f} %, "
        f"{attrs['detections_run']} detections run, {frames / max(seconds, 1e-9):.1f} frames/s"
    )


def align_to_file(
    video: Path,
    output: Path,
    settings: AlignSettings,
    *,
    threads: int | None,
    progress: bool,
    aligners: dict | None = None,
):
    """Align a video into its face file, written as it is aligned: memory stays bounded for any video
    length, and a failure (no face in the whole video, say) leaves no file. The face rule is recorded
    as the file's attribute ``face_rule``. Returns the chunks (their attrs and counts)."""
    from .facefile import face_writer

    chunks = iter_aligned_chunks(video, settings, threads=threads, progress=progress, aligners=aligners)
    with face_writer(output) as writer:
        for chunk in chunks:
            writer.append(chunk)
        writer.attrs.update(chunks.attrs)
    return chunks


def _cmd_align(args) -> int:
    settings = AlignSettings.from_args(args)
    if args.like is not None:
        # the model's training faces' settings, as `predict` aligns; read from the file's header alone.
        # The face rule and the stored normalization stay the command line's: choices about this video.
        from ..modelfile import read_settings

        settings = read_settings(args.like).settings.faces.align_settings(settings)
    chunks = align_to_file(args.video, args.output, settings, threads=args.threads, progress=not args.quiet)
    print(summary_line(chunks, args.video))
    return 0


def _chip_size(text: str) -> int:
    """argparse type of --chip-size: the one chip-size rule (contracts.chip_size_problem), before any decoding."""
    import argparse

    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of pixels: {text!r}") from None
    problem = chip_size_problem(size)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return size


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "align",
        help="detect, track and align the face in every frame of a video",
        description="Write the per-subject face file (chips, normalized chips, found, landmarks, transform, "
        "time) of a video: dlib HOG detection + landmark tracking, chips aligned as dlib.get_face_chip.",
    )
    parser.add_argument("video", type=Path, help="input video")
    parser.add_argument("-o", "--output", required=True, type=OutputPath, help="face file to write (.h5)")
    add_threads(parser, "cores to use: one decodes the video, the others align (default: all available)")
    parser.add_argument(
        "--landmarks",
        type=int,
        choices=LANDMARK_POINTS,
        default=DEFAULTS.landmarks,
        help=f"landmark model (default {DEFAULTS.landmarks})",
    )
    parser.add_argument(
        "--chip-size",
        type=_chip_size,
        default=DEFAULTS.chip_size,
        help=f"chip width and height in pixels (default {DEFAULTS.chip_size})",
    )
    parser.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=DEFAULTS.normalization,
        help=f"chip normalization stored as 'normalized', for inspection (default {DEFAULTS.normalization}, as "
        "train-cnn; the CNN normalizes the raw chips itself)",
    )
    parser.add_argument(
        "--detect-every",
        type=positive_int,
        default=DEFAULTS.detect_every,
        help=f"re-run the face detector at least every K frames (default {DEFAULTS.detect_every})",
    )
    parser.add_argument("--no-tracking", action="store_true", help="run the detector on every frame")
    parser.add_argument(
        "--face",
        choices=FACE_RULES,
        default=DEFAULTS.face,
        help="which face to follow where there are several: best (the detector's best score), left or right "
        "(the leftmost or rightmost face in the frame, e.g. Aff-Wild2's NAME_left and NAME_right videos); "
        f"tracking stays with the person chosen (default {DEFAULTS.face})",
    )
    parser.add_argument(
        "--like",
        type=Path,
        default=None,
        metavar="MODEL",
        help="align as the faces this model file was trained on (its landmarks, chip size, detect-every, "
        "tracking: these override the options above)",
    )
    add_quiet(parser)
    parser.set_defaults(handler=_cmd_align)
