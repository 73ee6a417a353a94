"""Aff-Wild2's own face crops as a face source: ``affectflow faces-from-release``.

The ABAW releases ship, beside the videos, a folder of aligned face crops per annotated subject:
``cropped_aligned/NAME/00001.jpg``, ``00002.jpg``, ... (112x112 colour; image k + 1 is decoded frame k, and a
frame without a face has no image). Most ABAW entries train on those rather than on their own detections. This
module turns one subject's crops into a face file (affectflow.faces.facefile) with one row per decoded frame of its
video: ``found`` where the image exists, ``source`` ``release``, the chip the image resized (area averaging) to
the chip size and made grey as the CNN reads it, ``time`` the video's decoded frame times (the face file of
``align`` has the same rows). Landmarks and transforms are NaN (the release gives none), scores NaN. Every later
stage reads the file as it reads an aligned one; training refuses to mix the two sources (the attribute
``landmark_model`` is ``release``, see faces.common_alignment_settings). A model trained on release crops aligns
new videos (``predict``, ``align --like``) with dlib at the same chip size: the release has no crops for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contracts import AFFWILD2_CROPS_DIR, DEFAULT_CHIP_SIZE, DEFAULT_NORMALIZATION, NORMALIZATIONS, chip_size_problem
from ..errors import fail
from ..io import OutputPath

RELEASE_MODEL = "release"  # the face file's landmark_model: no landmark model made these chips
IMAGE_SUFFIX = ".jpg"
CHUNK_FRAMES = 1024


def crops_folder(corpus_root: Path, subject: str, video: Path) -> Path:
    """A subject's crop folder: ``cropped_aligned/SUBJECT`` (the release names NAME_left / NAME_right's so),
    else ``cropped_aligned/NAME`` for video NAME."""
    base = Path(corpus_root) / AFFWILD2_CROPS_DIR
    for name in (subject, Path(video).stem):
        if (base / name).is_dir():
            return base / name
    raise fail(base / subject, f"no crop folder for {subject} (nor {base / Path(video).stem})")


def read_crop(path: Path, chip_size: int) -> np.ndarray:
    """One release crop as a chip: grey (OpenCV's BGR2GRAY), resized to chip_size (area averaging)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise fail(path, "unreadable image")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if grey.shape != (chip_size, chip_size):
        interpolation = cv2.INTER_AREA if grey.shape[0] > chip_size else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (chip_size, chip_size), interpolation=interpolation)
    return grey


def release_to_file(
    video: Path, crops: Path, output: Path, *, chip_size: int = DEFAULT_CHIP_SIZE, normalization: str, face: str
) -> tuple[int, int, int]:
    """Write the face file of ``video`` from its release crops; (decoded frames, found frames, images past the
    video's last frame, which are ignored)."""
    from .facefile import LOST, RELEASE, FaceTrack, face_writer
    from .normalize import normalize_chips
    from .video import frame_times, probe

    problem = chip_size_problem(chip_size)
    if problem:
        raise fail(crops, problem)
    if normalization not in NORMALIZATIONS:
        raise fail(crops, f"unknown normalization {normalization!r} (one of {', '.join(NORMALIZATIONS)})")
    if not crops.is_dir():
        raise fail(crops, "crop folder not found")
    numbers = sorted(int(p.stem) for p in crops.glob(f"*{IMAGE_SUFFIX}") if p.stem.isdigit())
    if not numbers:
        raise fail(crops, f"no crop images (00001{IMAGE_SUFFIX}, ...)")
    info = probe(video)
    times = frame_times(video)  # the rows: every decoded frame, as align's face file has them
    present = np.zeros(len(times), bool)
    inside = [n for n in numbers if 1 <= n <= len(times)]
    present[np.asarray(inside, np.int64) - 1] = True
    if not present.any():
        raise fail(crops, f"no crop image numbered within the video's {len(times)} frames")
    with face_writer(output) as writer:
        for begin in range(0, len(times), CHUNK_FRAMES):
            end = min(begin + CHUNK_FRAMES, len(times))
            found = present[begin:end]
            chips = np.zeros((end - begin, chip_size, chip_size), np.uint8)
            for i in np.flatnonzero(found):
                chips[i] = read_crop(crops / f"{begin + i + 1:05d}{IMAGE_SUFFIX}", chip_size)
            n = end - begin
            writer.append(
                FaceTrack(
                    chips=chips,
                    normalized=normalize_chips(chips, normalization, dtype=np.float16),
                    found=found.copy(),
                    landmarks=np.full((n, 5, 2), np.nan, np.float32),
                    transform=np.full((n, 2, 3), np.nan, np.float32),
                    time=times[begin:end],
                    source=np.where(found, RELEASE, LOST).astype(np.uint8),
                    score=np.full(n, np.nan, np.float32),
                )
            )
        writer.attrs.update(
            {
                "fps": float(info.fps),
                "chip_size": int(chip_size),
                "landmark_model": RELEASE_MODEL,
                "landmarks": 0,
                "normalization": normalization,
                "source": str(video),
                "crops": str(crops),
                "face_source": "release",
                "face_rule": face,
                "found_fraction": float(present.mean()),
            }
        )
    return len(times), int(present.sum()), len(numbers) - len(inside)


def _command(args) -> int:
    from ..data.corpus import open_corpus

    corpus = open_corpus(args.corpus)
    recording = corpus.recording(args.subject)
    crops = args.crops or crops_folder(corpus.root, recording.subject, recording.video)
    frames, found, past = release_to_file(
        recording.video,
        crops,
        args.output,
        chip_size=args.chip_size,
        normalization=args.normalization,
        face=recording.face,
    )
    extra = f", {past} image(s) past the last frame ignored" if past else ""
    print(f"{recording.video}: {frames} frames, {found} with a release crop ({100.0 * found / frames:.1f} %){extra}")
    return 0


def add_commands(subparsers) -> None:
    from .align import _chip_size

    parser = subparsers.add_parser(
        "faces-from-release",
        help="a face file from Aff-Wild2's own face crops (cropped_aligned/)",
        description="Write a subject's face file from the release's aligned crops (cropped_aligned/NAME/00001.jpg "
        "is decoded frame 0; a missing image is a frame without a face) instead of detecting faces: one row per "
        "decoded frame of its video, chips grey at --chip-size.",
    )
    parser.add_argument("corpus", type=Path, help="the Aff-Wild2 folder (holding cropped_aligned/)")
    parser.add_argument("subject")
    parser.add_argument("-o", "--output", required=True, type=OutputPath, help="face file to write (.h5)")
    parser.add_argument("--crops", type=Path, default=None, help=f"the crop folder (default {AFFWILD2_CROPS_DIR}/NAME)")
    parser.add_argument("--chip-size", type=_chip_size, default=DEFAULT_CHIP_SIZE, help="chip width and height")
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default=DEFAULT_NORMALIZATION)
    parser.set_defaults(handler=_command)
