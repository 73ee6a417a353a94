"""How a video's faces are aligned: the one spelling of the alignment options.

`affectflow align`, `align-batch`, `predict` and the model file's FaceSettings all build an AlignSettings
and pass it whole; its checks run before any frame is decoded. Light on purpose (no numpy, no cv2): the
model file's header reader and the workflow use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts import (
    DEFAULT_CHIP_SIZE,
    DEFAULT_FACE_RULE,
    DEFAULT_NORMALIZATION,
    FACE_RULES,
    LANDMARK_POINTS,
    NORMALIZATIONS,
    chip_size_problem,
)

DEFAULT_DETECT_EVERY = 10


@dataclass(frozen=True)
class AlignSettings:
    """landmarks: dlib's 5- or 68-point model; chip_size: the chip's width and height; normalization: the
    stored `normalized` chips' (for inspection: the CNN normalizes raw chips itself); detect_every: the
    detector runs at least every K frames while tracking; tracking: False runs it on every frame; face:
    which face of several (the face rule, contracts.FACE_RULES)."""

    landmarks: int = LANDMARK_POINTS[0]
    chip_size: int = DEFAULT_CHIP_SIZE
    normalization: str = DEFAULT_NORMALIZATION
    detect_every: int = DEFAULT_DETECT_EVERY
    tracking: bool = True
    face: str = DEFAULT_FACE_RULE

    def problem(self) -> str | None:
        """What is wrong with these settings, or None."""
        if self.landmarks not in LANDMARK_POINTS:
            return f"unknown landmark model {self.landmarks!r} (one of {', '.join(map(str, LANDMARK_POINTS))})"
        if self.normalization not in NORMALIZATIONS:
            return f"unknown normalization {self.normalization!r} (one of {', '.join(NORMALIZATIONS)})"
        if not isinstance(self.detect_every, int) or self.detect_every < 1:
            return f"detect_every must be at least 1, got {self.detect_every}"
        if self.face not in FACE_RULES:
            return f"unknown face rule {self.face!r} (one of {', '.join(FACE_RULES)})"
        return chip_size_problem(self.chip_size)

    @classmethod
    def from_args(cls, args) -> AlignSettings:
        """From the options of `affectflow align` (argparse: --landmarks, --chip-size, ..., --no-tracking)."""
        return cls(
            landmarks=args.landmarks,
            chip_size=args.chip_size,
            normalization=args.normalization,
            detect_every=args.detect_every,
            tracking=not args.no_tracking,
            face=args.face,
        )


DEFAULT_ALIGN_SETTINGS = AlignSettings()
