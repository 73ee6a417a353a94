"""Augmentation A on a whole batch of RAW chips on the device, no per-sample Python.

It follows the authors' `DataAugmenter2(crop_shape=(96, 96), flip=True, gray_on=True)`
(ifp-uiuc/anna, anna/util) and runs, as theirs does, BEFORE the normalization
(affectflow.nets.normalize_torch), on pixels scaled from uint8:

- geometry, one affine per sample (affine_grid + grid_sample, bilinear, zero padding as
  skimage's warp): horizontal flip with probability 1/2, rotation U(-5, 5) degrees, scale
  U(0.7, 1.4) (the crop window spans `scale` chip sides: < 1 zooms in, > 1 zooms out), and a
  translation U(-1, 1) * |1 - scale| * S / 2 pixels each way, i.e. as far as the window can
  move while staying inside the chip (or keeping the chip inside the window);
- gray levels (their `gray_augment_image`): x ** U(0.25, 4) * U(0.7, 1.4) + U(-0.1, 0.1),
  then a per-image min-max stretch to [0, 1].

One deliberate difference: the authors apply the gray-level jitter to pixels on their
[0, 2] scale and double the stretched result; here it works on the [0, 1] scale that
normalize_torch expects (its `local-mean` method applies the factor 2 itself), so that
x ** gamma stays in [0, 1] instead of amplifying the bright half of the face.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

SCALE = (0.7, 1.4)
ROTATION_DEG = 5.0
GAMMA = (0.25, 4.0)
GAIN = (0.7, 1.4)
OFFSET = 0.1


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, device=like.device, dtype=torch.float32) * (high - low) + low


def augment_geometry(x: torch.Tensor) -> torch.Tensor:
    """Flip, rotation, scale and translation of [N,1,S,S] float chips (zeros outside the chip)."""
    n = x.shape[0]
    scale = _uniform(n, *SCALE, x)
    angle = _uniform(n, -ROTATION_DEG, ROTATION_DEG, x) * (math.pi / 180.0)
    flip = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0)
    # grid units span 2 per chip side, so a shift of d pixels is 2 d / S = U(-1, 1) * |1 - scale|
    shift = _uniform(2 * n, -1.0, 1.0, x).view(n, 2) * (1.0 - scale).abs()[:, None]
    # theta maps output (crop) coordinates to input (chip) coordinates
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_gray(x: torch.Tensor) -> torch.Tensor:
    """The authors' gray-level jitter of [N,1,S,S] chips on [0, 1], stretched back to [0, 1]."""
    n = x.shape[0]
    gamma = _uniform(n, *GAMMA, x).view(n, 1, 1, 1)
    gain = _uniform(n, *GAIN, x).view(n, 1, 1, 1)
    offset = _uniform(n, -OFFSET, OFFSET, x).view(n, 1, 1, 1)
    x = x.clamp_min(0.0) ** gamma * gain + offset
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    return (x - low) / span


def augment_batch(x: torch.Tensor) -> torch.Tensor:
    """[N,1,S,S] float32 raw chips on [0, 1] -> augmented [N,1,S,S] on [0, 1].

    Draws from torch's global RNG (seeded and checkpointed by the trainer).
    """
    return augment_gray(augment_geometry(x.float()))
