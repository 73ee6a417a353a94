"""Augmentation A (DESIGN.md section 1) on a whole batch on the device, no per-sample Python.

Geometry: one affine per sample (affine_grid + grid_sample, bilinear, border padding):
random translation (up to TRANSLATE of the chip side each way), scale 0.7-1.4,
rotation +-5 degrees, horizontal flip with probability 1/2.
Intensity (the chips are already mean-subtracted/contrast-normalized, so jitter
works on a per-image min-max rescaling to [0, 1] and maps back): gamma 0.8-1.25
(log-uniform), then gain 0.8-1.25 (log-uniform) and offset +-0.1 of the range.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

SCALE = (0.7, 1.4)
ROTATION_DEG = 5.0
TRANSLATE = 0.1  # fraction of the chip side
GAMMA = (0.8, 1.25)
GAIN = (0.8, 1.25)
OFFSET = 0.1


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, device=like.device, dtype=torch.float32) * (high - low) + low


def _log_uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(low), math.log(high), like))


def augment_batch(x: torch.Tensor) -> torch.Tensor:
    """[N,1,S,S] float32 -> augmented [N,1,S,S]; draws from torch's global RNG (seeded, checkpointed)."""
    n = x.shape[0]
    scale = _uniform(n, *SCALE, x)
    angle = _uniform(n, -ROTATION_DEG, ROTATION_DEG, x) * (math.pi / 180.0)
    flip = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0)
    shift = _uniform(2 * n, -2 * TRANSLATE, 2 * TRANSLATE, x).view(n, 2)  # grid units span 2
    # theta maps output coordinates to input coordinates: zooming in by `scale` samples 1/scale.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    low = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    unit = ((x - low) / span).clamp(0.0, 1.0)
    gamma = _log_uniform(n, *GAMMA, x).view(n, 1, 1, 1)
    gain = _log_uniform(n, *GAIN, x).view(n, 1, 1, 1)
    offset = _uniform(n, -OFFSET, OFFSET, x).view(n, 1, 1, 1)
    unit = unit.clamp_min(1e-6) ** gamma * gain + offset
    return unit * span + low
