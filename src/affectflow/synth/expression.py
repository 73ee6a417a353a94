"""Expression warps: displacement fields that valence and arousal drive.

Each expression component is a sum of Gaussian bumps placed on the face's 68
landmarks (for coefficient 1); a frame's expression is a linear combination of
the components' fields with weights from :func:`expression_coefficients`.
"""

from __future__ import annotations

import numpy as np


def rbf_field(shape: tuple[int, int], points, displacements, sigmas) -> np.ndarray:
    """Sum of Gaussian bumps: float32 [H, W, 2] displacement (dx, dy) in pixels."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((height, width, 2), np.float32)
    for (px, py), (dx, dy), sigma in zip(points, displacements, sigmas):
        weight = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2.0 * sigma**2))
        out[..., 0] += dx * weight
        out[..., 1] += dy * weight
    return out


def field_at(field_: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Displacement at (rounded) point positions."""
    h, w = field_.shape[:2]
    xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    return field_[ys, xs]


# Expression components: name -> function(landmarks, d) -> (points, displacements, sigmas) for coefficient 1.
def _smile(lm, d):
    # Mouth corners up and outward (a negative coefficient pulls them down and in), cheeks follow.
    left, right = lm[48], lm[54]
    cheek_l, cheek_r = (lm[48] + lm[31] + lm[2]) / 3, (lm[54] + lm[35] + lm[14]) / 3
    return (
        [left, right, cheek_l, cheek_r, lm[51], lm[57]],
        [(-0.07 * d, -0.16 * d), (0.07 * d, -0.16 * d), (0, -0.05 * d), (0, -0.05 * d), (0, -0.02 * d), (0, -0.03 * d)],
        [0.17 * d, 0.17 * d, 0.25 * d, 0.25 * d, 0.12 * d, 0.15 * d],
    )


def _mouth_open(lm, d):
    lower = lm[[56, 57, 58, 65, 66, 67]].mean(0)
    return (
        [lower, lm[8], lm[62]],
        [(0, 0.16 * d), (0, 0.12 * d), (0, -0.03 * d)],
        [0.2 * d, 0.35 * d, 0.12 * d],
    )


def _brows(lm, d):
    points = [lm[i] for i in range(17, 27)]
    return points, [(0, -0.11 * d)] * len(points), [0.16 * d] * len(points)


def _frown(lm, d):
    centre_x = lm[27, 0]
    points = [lm[20], lm[21], lm[22], lm[23]]
    moves = [(float(np.sign(centre_x - p[0])) * 0.06 * d, 0.07 * d) for p in points]
    return points, moves, [0.12 * d] * 4


def _eyes(lm, d):
    upper = [lm[i] for i in (37, 38, 43, 44)]
    lower = [lm[i] for i in (40, 41, 46, 47)]
    return upper + lower, [(0, -0.035 * d)] * 4 + [(0, 0.015 * d)] * 4, [0.08 * d] * 8


EXPRESSIONS = {"smile": _smile, "mouth_open": _mouth_open, "brows": _brows, "frown": _frown, "eyes": _eyes}


def expression_fields(landmarks: np.ndarray, d: float, shape: tuple[int, int]) -> np.ndarray:
    """float32 [K, H, W, 2]: each component's forward displacement (order of EXPRESSIONS)."""
    return np.stack([rbf_field(shape, *build(landmarks, d)) for build in EXPRESSIONS.values()])


def expression_coefficients(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    """[T, 5] weights of the expression fields (order of EXPRESSIONS) from valence/arousal."""
    valence = np.asarray(valence, np.float32)
    arousal = np.asarray(arousal, np.float32)
    return np.stack(
        [
            valence,  # smile / corners down
            np.clip(0.35 + 0.35 * arousal + 0.25 * valence, 0.0, 1.2),  # mouth opening
            arousal,  # brows up / down
            np.clip(-valence, 0.0, None),  # frown for negative valence
            arousal,  # eyes wide / narrow
        ],
        axis=1,
    )
