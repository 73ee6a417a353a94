# Typed stub of the C++ extension affectflow._native (csrc/module.cpp): what editors and type checkers
# see. Keep in step with the pybind11 definitions; tests/test_native.py holds the names equal.
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FACE_RULES: Final[tuple[str, ...]]
SOURCE_LOST: Final[int]
SOURCE_DETECTED: Final[int]
SOURCE_TRACKED: Final[int]

class Aligner:
    """Whole-video face aligner: dlib HOG detection, landmark tracking, face chips."""

    def __init__(
        self,
        predictor_path: str,
        *,
        chip_size: int,
        padding: float,
        face_rule: str,
        tracking: bool = True,
        detect_every: int = 10,
        threads: int = 1,
        detect_face_width: float = 80.0,
        min_chip_correlation: float = 0.6,
    ) -> None: ...
    def process(self, frames: npt.NDArray[np.uint8], continue_track: bool = True) -> dict[str, np.ndarray]: ...
    def landmarks(
        self, frame: npt.NDArray[np.uint8], box: tuple[float, float, float, float]
    ) -> npt.NDArray[np.float32]: ...
    def reset(self) -> None: ...
    @property
    def landmark_count(self) -> int: ...
    @property
    def detections_run(self) -> int: ...
    @property
    def region_searches(self) -> int: ...
    @property
    def frame_searches(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def face_rule(self) -> str: ...

def bgr_to_gray(bgr: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8]) -> None: ...
def face_chip(
    frame: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.floating[Any]], size: int = 96, padding: float = 0.25
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]: ...
def detect_faces(frame: npt.NDArray[np.uint8]) -> list[tuple[tuple[int, int, int, int], float]]: ...
def normalize_into(
    chips: npt.NDArray[np.uint8],
    out: np.ndarray,
    method: str,
    eps: float = ...,
    window: int = 9,
    sigma: float = 2.0,
    threads: int = 0,
) -> None: ...
