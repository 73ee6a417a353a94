"""Frame rendering: a subject's face under head motion, lighting, blur, noise and face-lost spans.

:func:`render_frames` draws everything from ``default_rng([seed, index, 2])``
in a fixed order (background, motion, lighting, blur, exit direction, noise),
so that the same seed gives the same frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .expression import expression_coefficients
from .identity import build_identity
from .plan import SubjectPlan, SubjectTraces, SynthSettings, filtered_noise_scale

# Geometry of the rendered face, in units of the nominal inter-ocular distance.
EYE_DISTANCE = 56.0  # pixels between eye centres at 640x480 (dlib's face box ~ 130 px)


def smooth_motion(rng: np.random.Generator, n: int, fps: float, sigma_s: float) -> np.ndarray:
    """Unit-variance (in theory) Gaussian-filtered noise over ``n`` frames, ``sigma_s`` seconds wide."""
    from scipy.ndimage import gaussian_filter1d

    sigma = sigma_s * fps
    pad = int(4 * sigma)
    x = gaussian_filter1d(rng.standard_normal(n + 2 * pad), sigma)[pad : pad + n]
    return x * filtered_noise_scale(sigma)


def _over(background: np.ndarray, premultiplied: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lit premultiplied BGRA over a BGR box, all uint8 (saturating cv2 ops: several times numpy's speed)."""
    import cv2

    transparency = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(premultiplied, 3)), cv2.COLOR_GRAY2BGR)
    behind = cv2.multiply(background, transparency, scale=1.0 / 255.0)
    front = cv2.multiply(
        cv2.cvtColor(premultiplied, cv2.COLOR_BGRA2BGR), cv2.merge([light, light, light]), dtype=cv2.CV_8U
    )
    return cv2.add(behind, front)


def _face_lost(plan: SubjectPlan, frame_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-lost spans: exits push the head out of frame (how far, 0..1 per frame), occlusions cover it."""
    exit_offset = np.zeros(len(frame_times))
    occluded = np.zeros(len(frame_times), bool)
    for start, end, kind in plan.face_lost:
        inside = (frame_times >= start) & (frame_times <= end)
        if kind == "exit":
            # Ramp out over the first 30% of the span, back in over the last 30%.
            phase = np.clip(np.minimum(frame_times - start, end - frame_times) / (0.3 * (end - start)), 0, 1)
            exit_offset += np.where(inside, phase, 0.0)
        else:
            occluded |= inside
    return exit_offset, occluded


def _noise_bank(rng: np.random.Generator, sd: float, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sensor noise: a bank of precomputed noise frames (signed noise split into +/- parts for saturating adds)."""
    bank = []
    for _ in range(8):
        noise = rng.normal(0.0, sd, (height, width, 1)).astype(np.float32)
        noise = np.repeat(noise, 3, axis=2)
        bank.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
    return bank


def render_frames(
    settings: SynthSettings, plan: SubjectPlan, landmarks: np.ndarray, traces: SubjectTraces
) -> Iterator[np.ndarray]:
    """One subject's frames (BGR uint8 [H, W, 3], a new array each), showing ``traces.shown``."""
    import cv2

    width, height = settings.size
    fps = settings.fps
    frames = int(round(settings.seconds * fps))
    rng = np.random.default_rng([settings.seed, plan.index, 2])
    # The face keeps its proportion of the frame whatever the frame size.
    eye_distance = EYE_DISTANCE * min(width / 640, height / 480)
    identity = build_identity(plan.photo, plan.identity, plan.mirrored, landmarks, settings.size, eye_distance, rng)

    frame_times = traces.frame_times
    coefficients = expression_coefficients(traces.shown["valence"], traces.shown["arousal"])

    # Head motion, lighting, blur: smooth per-frame trajectories.
    # Bounded so that the face stays in the frame and within the roll a frontal detector handles.
    dx = np.clip(0.12 * width * smooth_motion(rng, frames, fps, 1.5), -0.25 * width, 0.25 * width)
    dy = np.clip(0.06 * height * smooth_motion(rng, frames, fps, 1.5), -0.12 * height, 0.1 * height)
    roll = np.clip(3.5 * smooth_motion(rng, frames, fps, 1.2), -8.0, 8.0)
    scale = np.clip(np.exp(0.1 * smooth_motion(rng, frames, fps, 3.0)) * rng.uniform(0.95, 1.15), 0.85, 1.3)
    # Light = gain + gradient over the frame; the bounds keep it above 0.05 everywhere.
    gain = np.clip(1.0 + 0.15 * smooth_motion(rng, frames, fps, 4.0), 0.6, 1.4)
    light_x = np.clip(0.25 * smooth_motion(rng, frames, fps, 5.0), -0.35, 0.35)
    light_y = np.clip(0.12 * smooth_motion(rng, frames, fps, 5.0), -0.2, 0.2)
    blur = np.clip(0.8 + 0.6 * smooth_motion(rng, frames, fps, 2.0), 0.0, 2.0)
    base_x, base_y = width / 2 + rng.uniform(-0.05, 0.05) * width, height * 0.52

    exit_offset, occluded = _face_lost(plan, frame_times)
    exit_direction = 1.0 if rng.integers(0, 2) else -1.0

    bank = _noise_bank(rng, settings.noise, height, width)
    noise_pick = rng.integers(0, len(bank), frames)
    occluder_colour = rng.uniform(60, 200, 3).tolist()

    side = identity.patch.shape[0]
    x0, y0, x1, y1 = identity.roi
    patch_centre = identity.landmarks[27:36].mean(0)
    # Premultiplied BGRA: one remap, one blur and one warp move colour and alpha together.
    patch = np.dstack([identity.patch * identity.mask[..., None], 255.0 * identity.mask])
    patch = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    # Lighting is fixed in the room: a gain and a gradient over frame coordinates.
    ramp_y, ramp_x = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j].astype(np.float32)

    for i in range(frames):
        frame = identity.background.copy()
        # Expression: warp the inner-face region by the weighted displacement fields.
        warp = identity.grid + np.tensordot(coefficients[i], identity.fields, axes=1)
        face = patch.copy()
        face[y0:y1, x0:x1] = cv2.remap(patch, warp[..., 0], warp[..., 1], cv2.INTER_LINEAR)
        if blur[i] > 0.3:
            face = cv2.GaussianBlur(face, (0, 0), float(blur[i]))
        # Head pose: a similarity from patch to frame, rendered into the covered box only.
        cx = base_x + dx[i] + exit_direction * exit_offset[i] * (width / 2 + side)
        cy = base_y + dy[i]
        centre = (float(patch_centre[0]), float(patch_centre[1]))
        matrix = cv2.getRotationMatrix2D(centre, float(roll[i]), float(scale[i]))
        matrix[:, 2] += np.array([cx, cy]) - patch_centre
        corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ matrix.T
        fx0, fy0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
        fx1, fy1 = np.minimum(np.ceil(corners.max(0)).astype(int), [width, height])
        if fx1 > fx0 and fy1 > fy0:
            matrix[:, 2] -= [fx0, fy0]
            fg = cv2.warpAffine(face, matrix, (int(fx1 - fx0), int(fy1 - fy0)), flags=cv2.INTER_LINEAR)
            light = (
                float(gain[i])
                + float(light_x[i]) * ramp_x[fy0:fy1, fx0:fx1]
                + float(light_y[i]) * ramp_y[fy0:fy1, fx0:fx1]
            )
            frame[fy0:fy1, fx0:fx1] = _over(frame[fy0:fy1, fx0:fx1], fg, light)
        if occluded[i]:
            axes = (int(1.7 * eye_distance * scale[i]), int(1.9 * eye_distance * scale[i]))
            cv2.ellipse(frame, (int(cx), int(cy)), axes, float(roll[i]), 0, 360, occluder_colour, -1)
        plus, minus = bank[noise_pick[i]]
        cv2.add(frame, plus, dst=frame)
        cv2.subtract(frame, minus, dst=frame)
        yield frame
