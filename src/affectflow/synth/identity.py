"""Identities: the source photographs and a subject's face made from one of them.

Two public-domain photographs (see the package docstring) give every subject's
face: dlib's 68 landmarks place an identity warp (face width and height, eye
spacing, nose, mouth, chin), then mirroring, skin tone and gamma, an alpha
mask (head, neck, shoulders), the expression fields and a background.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import AffectflowError, fail
from .expression import expression_fields, field_at, rbf_field

PHOTOS = ("astronaut", "grace_hopper")
PATCH_HALF = 2.9  # half the patch side, in inter-ocular distances


# --------------------------------------------------------------------------- photos


@functools.cache
def _photo(name: str) -> np.ndarray:
    """One source photograph as BGR uint8 (cached: treat as read-only)."""
    import cv2

    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    if name == "grace_hopper":
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise fail(path, "cannot read the sample photograph")
        return image
    raise ValueError(f"unknown photo {name!r}")


@functools.lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    from ..faces.landmark_models import landmark_model_path  # the one place that finds dlib's models

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(landmark_model_path(68)))


@functools.cache
def photo_landmarks(name: str) -> np.ndarray:
    """68 dlib landmarks (float32 [68, 2], x/y pixels) of a source photo; computed once per process."""
    import cv2

    detector, predictor = _dlib_models()
    image = _photo(name)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    faces = detector(gray, 1)
    if len(faces) == 0:
        raise AffectflowError(f"dlib finds no face in the source photo {name}")
    box = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(gray, box)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------- identity warp


def _eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return landmarks[36:42].mean(0), landmarks[42:48].mean(0)


def random_identity(rng: np.random.Generator) -> dict[str, float]:
    return {
        "face_width": float(rng.uniform(-0.08, 0.08)),
        "face_height": float(rng.uniform(-0.08, 0.08)),
        "eye_spacing": float(rng.uniform(-0.07, 0.07)),
        "nose_length": float(rng.uniform(-0.07, 0.1)),
        "mouth_drop": float(rng.uniform(-0.05, 0.08)),
        "mouth_width": float(rng.uniform(-0.06, 0.08)),
        "chin": float(rng.uniform(-0.04, 0.12)),
        "gamma": float(rng.uniform(0.75, 1.3)),
        "tint_b": float(rng.uniform(0.8, 1.15)),
        "tint_g": float(rng.uniform(0.85, 1.1)),
        "tint_r": float(rng.uniform(0.85, 1.2)),
    }


def identity_field(landmarks: np.ndarray, shape: tuple[int, int], identity: dict[str, float]) -> np.ndarray:
    """Forward displacement that turns the source face into a subject's identity."""
    left_eye, right_eye = _eye_centres(landmarks)
    d = float(np.linalg.norm(right_eye - left_eye))
    centre = landmarks[27:36].mean(0)
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    window = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2.0 * (1.4 * d) ** 2))
    out = np.zeros((height, width, 2), np.float32)
    # Face width / height: a windowed scaling about the face centre.
    out[..., 0] += identity["face_width"] * (xs - centre[0]) * window
    out[..., 1] += identity["face_height"] * (ys - centre[1]) * window
    points, moves, sigmas = [], [], []
    spread = identity["eye_spacing"] * d
    points += [left_eye, right_eye]
    moves += [(-spread, 0.0), (spread, 0.0)]
    sigmas += [0.35 * d] * 2
    points.append(landmarks[33])  # nose tip: nose length
    moves.append((0.0, identity["nose_length"] * d))
    sigmas.append(0.3 * d)
    mouth = landmarks[48:68].mean(0)
    points.append(mouth)
    moves.append((0.0, identity["mouth_drop"] * d))
    sigmas.append(0.35 * d)
    widen = identity["mouth_width"] * d
    points += [landmarks[48], landmarks[54]]
    moves += [(-widen, 0.0), (widen, 0.0)]
    sigmas += [0.22 * d] * 2
    points.append(landmarks[8])  # chin
    moves.append((0.0, identity["chin"] * d))
    sigmas.append(0.45 * d)
    out += rbf_field(shape, points, moves, sigmas)
    return out


# --------------------------------------------------------------------------- a subject's face


@dataclass
class Identity:
    """A subject's face, ready to render: patch, alpha mask and expression fields."""

    patch: np.ndarray  # float32 [P, P, 3] BGR
    mask: np.ndarray  # float32 [P, P] alpha
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 of the expression region in the patch
    grid: np.ndarray  # float32 [h, w, 2] absolute patch coordinates of the region
    fields: np.ndarray  # float32 [K, h, w, 2] backward displacement per unit coefficient
    landmarks: np.ndarray  # float32 [68, 2] in patch coordinates
    background: np.ndarray  # uint8 [H, W, 3]


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room-like backdrop: a colour gradient with a few soft blocks."""
    import cv2

    top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(40, width // 2)), y0 + int(rng.integers(40, height // 2))
        cv2.rectangle(image, (x0, y0), (x1, y1), rng.uniform(20, 235, 3).tolist(), -1)
    image = cv2.GaussianBlur(image, (0, 0), 3.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def _alpha_mask(lm: np.ndarray, d: float, side: int) -> np.ndarray:
    """Alpha: head ellipse (with hair) plus neck and shoulders down to the patch edge."""
    import cv2

    face_centre = lm[27:36].mean(0)
    mask = np.zeros((side, side), np.float32)
    head_centre = (int(face_centre[0]), int(face_centre[1] - 0.35 * d))
    cv2.ellipse(mask, head_centre, (int(1.45 * d), int(1.95 * d)), 0, 0, 360, 1.0, -1)
    chin_y = int(lm[8, 1])
    neck = np.array(
        [
            [face_centre[0] - 0.65 * d, chin_y - 0.3 * d],
            [face_centre[0] + 0.65 * d, chin_y - 0.3 * d],
            [face_centre[0] + 2.6 * d, side],
            [face_centre[0] - 2.6 * d, side],
        ],
        np.int32,
    )
    cv2.fillConvexPoly(mask, neck, 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 4.0)
    # Shoulders fade out towards the patch's lower edge instead of ending in a straight cut.
    fade = np.clip((side - np.arange(side, dtype=np.float32)) / (0.3 * side), 0.0, 1.0)
    mask *= fade[:, None]
    return mask


def build_identity(
    photo_name: str,
    identity: dict,
    mirrored: bool,
    landmarks: np.ndarray,
    size: tuple[int, int],
    eye_distance: float,
    rng,
) -> Identity:
    """Cut the source face (a subject plan's photo) into a patch with eyes level at nominal size, then
    apply the plan's identity warp, mirroring and skin tone."""
    import cv2

    photo = _photo(photo_name)
    left_eye, right_eye = _eye_centres(landmarks)
    d = float(np.linalg.norm(right_eye - left_eye))
    angle = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
    centre = (left_eye + right_eye) / 2 + np.array([0.0, 0.55 * d], np.float32)  # between eyes and mouth
    scale = eye_distance / d
    half = int(round(PATCH_HALF * eye_distance))
    side = 2 * half
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix[:, 2] += np.array([half, half]) - centre
    patch = cv2.warpAffine(photo, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    lm = (np.c_[landmarks, np.ones(68)] @ matrix.T).astype(np.float32)

    # Identity warp (forward field F: a point p moves to p + F(p); sampled backwards as x - F(x)).
    forward = identity_field(lm, (side, side), identity)
    grid = np.dstack(np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32)))
    backward = grid - forward
    patch = cv2.remap(patch, backward[..., 0], backward[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lm = lm + field_at(forward, lm)
    if mirrored:
        patch = patch[:, ::-1].copy()
        lm = lm.copy()
        lm[:, 0] = side - 1 - lm[:, 0]

    # Skin tone and gamma.
    ident = identity
    lut = (255.0 * (np.arange(256) / 255.0) ** ident["gamma"]).astype(np.float32)
    patch = lut[patch] * np.array([ident["tint_b"], ident["tint_g"], ident["tint_r"]], np.float32)
    patch = np.clip(patch, 0, 255).astype(np.float32)

    d_new = float(np.linalg.norm(np.subtract(*_eye_centres(lm))))
    mask = _alpha_mask(lm, d_new, side)

    # Expression fields over the region around the inner face.
    x0, y0 = np.floor(lm.min(0) - 0.6 * d_new).astype(int)
    x1, y1 = np.ceil(lm.max(0) + 0.6 * d_new).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, side), min(y1, side)
    region = (y1 - y0, x1 - x0)
    local = lm - np.array([x0, y0], np.float32)
    fields = expression_fields(local, d_new, region)
    return Identity(
        patch=patch,
        mask=mask,
        roi=(int(x0), int(y0), int(x1), int(y1)),
        grid=grid[y0:y1, x0:x1].copy(),
        fields=-fields,  # backward sampling: x - F(x)
        landmarks=lm,
        background=_background(rng, *size),
    )
