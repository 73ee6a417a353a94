"""Pure-Python reference of the aligner: dlib's own Python API (the ``dlib-bin`` wheel).

Detection, landmarks and ``dlib.get_face_chip`` on every frame, the face chosen by
detector score: the slow, obviously-right path that tests and benchmarks compare
the native aligner against. The pipeline never uses it.

:func:`moving_face_video` renders a short test video of a real photograph
(scikit-image's astronaut) moving smoothly, with spans where the face is covered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.landmark_models import landmark_model_path


@dataclass
class ReferenceResult:
    chips: np.ndarray  # uint8 [T,S,S]
    found: np.ndarray  # bool [T]
    landmarks: np.ndarray  # float32 [T,P,2], NaN where not found


class ReferenceAligner:
    """dlib-bin's detector + shape predictor + get_face_chip, frame by frame."""

    def __init__(self, landmarks: int = 5, chip_size: int = 96, padding: float = 0.25) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(landmark_model_path(landmarks)))
        self.points = landmarks
        self.chip_size = chip_size
        self.padding = padding

    def align_frame(self, gray: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray]:
        """(found, chip uint8 [S,S], landmarks float32 [P,2]) of one gray frame."""
        import dlib

        boxes, scores, _ = self.detector.run(gray, 0, 0.0)
        if not boxes:
            chip = np.zeros((self.chip_size, self.chip_size), np.uint8)
            return False, chip, np.full((self.points, 2), np.nan, np.float32)
        best = boxes[int(np.argmax(scores))]
        shape = self.predictor(gray, best)
        chip = dlib.get_face_chip(gray, shape, size=self.chip_size, padding=self.padding)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return True, chip, points

    def align_frames(self, frames: np.ndarray) -> ReferenceResult:
        """Align gray [T,H,W] or BGR [T,H,W,3] uint8 frames (BGR converted as OpenCV does)."""
        import cv2

        results = []
        for frame in frames:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            results.append(self.align_frame(np.ascontiguousarray(gray)))
        return ReferenceResult(
            chips=np.stack([r[1] for r in results]),
            found=np.array([r[0] for r in results], dtype=bool),
            landmarks=np.stack([r[2] for r in results]),
        )


def similarity(angle_deg: float, scale: float, tx: float, ty: float, centre=(0.0, 0.0)) -> np.ndarray:
    """2x3 map: rotate by angle and scale about ``centre``, then translate by (tx, ty)."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    return np.hstack([rot, (c - rot @ c + np.array([tx, ty]))[:, None]])


def moving_face_video(
    frames: int = 100,
    size: tuple[int, int] = (640, 480),
    *,
    seed: int = 0,
    face_width: float = 160.0,
    hidden: tuple[tuple[int, int], ...] = (),
) -> np.ndarray:
    """Gray frames [T,H,W] of the astronaut photo under smooth head motion.

    The face (about ``face_width`` px wide) drifts around the frame, turns by up to
    +-12 degrees and zooms by +-15 %; frames in the half-open spans of ``hidden``
    show only the background (the face leaves).
    """
    import cv2
    from skimage import data

    width, height = size
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    face_centre = np.array([222.0, 126.0])  # the astronaut's face in the photo (dlib box centre)
    base_scale = face_width / 87.0  # dlib's box of that face is 87 px wide
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    background = cv2.GaussianBlur(rng.integers(60, 200, (height, width), dtype=np.uint8), (0, 0), 6)
    t = np.arange(frames) / 25.0
    video = np.empty((frames, height, width), np.uint8)
    for i in range(frames):
        angle = 12.0 * np.sin(0.7 * t[i] + phases[0])
        scale = base_scale * (1.0 + 0.15 * np.sin(0.5 * t[i] + phases[1]))
        target = np.array(
            [
                width / 2 + 0.2 * width * np.sin(0.4 * t[i] + phases[2]),
                height / 2 + 0.15 * height * np.sin(0.6 * t[i] + phases[3]),
            ]
        )
        warp = similarity(angle, scale, *(target - face_centre), centre=face_centre)
        if any(start <= i < stop for start, stop in hidden):
            video[i] = background
            continue
        cv2.warpAffine(
            photo,
            warp,
            (width, height),
            dst=video[i],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        mask = cv2.warpAffine(np.full(photo.shape, 255, np.uint8), warp, (width, height)) == 0
        video[i][mask] = background[mask]
    return video
