"""How often dlib's HOG detector finds the face in a synthetic corpus (tests; not the pipeline)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..contracts import avec_video
from ..synth import face_visible, read_metadata


@dataclass
class DetectionRate:
    """dlib HOG hits on sampled frames: where a face is meant to be, and in the core of face-lost spans."""

    found: int = 0
    meant: int = 0
    found_in_lost: int = 0
    lost: int = 0

    @property
    def rate(self) -> float:
        return self.found / self.meant if self.meant else float("nan")

    def __str__(self) -> str:
        return (
            f"dlib HOG found the face in {self.found}/{self.meant} sampled frames meant to have one "
            f"({100 * self.rate:.1f}%), and in {self.found_in_lost}/{self.lost} frames inside face-lost spans"
        )


def face_detection_rate(corpus: str | os.PathLike, every: int = 10, upsample: int = 0) -> DetectionRate:
    """Run dlib's HOG frontal face detector (Python API) on every ``every``-th frame of a synthetic corpus.

    Frames within 0.1 s of a face-lost span are not counted as meant to have
    a face; frames 0.35 s or more inside one count as lost.
    """
    import dlib

    from ..faces.video import iter_frames

    detector = dlib.get_frontal_face_detector()
    _, plans = read_metadata(corpus)
    result = DetectionRate()
    for plan in plans:
        for index, (time, frame) in enumerate(iter_frames(Path(corpus) / avec_video(plan.subject), gray=True)):
            if index % every:
                continue
            hit = len(detector(frame, upsample)) > 0
            if face_visible(plan, [time], margin=0.1)[0]:
                result.meant += 1
                result.found += hit
            elif not face_visible(plan, [time], margin=-0.35)[0]:
                result.lost += 1
                result.found_in_lost += hit
    return result
