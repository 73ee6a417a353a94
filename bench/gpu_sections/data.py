"""Synthetic data made in memory: uint8 face-like chips with learnable labels, and CNN-like frame features."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def synthetic_chips(n: int, size: int, seed: int = 0):
    """(uint8 chips [n,size,size], float32 labels [n] in [-1,1]) with some face-like structure.

    32 templates (an ellipse 'face', dark eye/mouth blobs, a few random blobs, a gradient),
    each chip one template with random gain/offset and pixel noise; a chip's label is its
    template's value plus noise, so the data are learnable.
    """
    g = torch.Generator().manual_seed(seed)
    k = 32
    axis = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")

    def blob(cy, cx, sy, sx):
        return torch.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))

    templates = []
    for _ in range(k):
        r = torch.rand(16, generator=g)
        face = ((xx / (0.6 + 0.2 * r[0])) ** 2 + (yy / (0.8 + 0.15 * r[1])) ** 2 < 1).float() * 0.5
        t = 0.25 + face + 0.2 * (xx * (r[2] - 0.5) + yy * (r[3] - 0.5))
        for cx in (-0.3, 0.3):  # eyes
            t = t - 0.35 * blob(-0.25 + 0.1 * r[4], cx, 0.08, 0.12)
        t = t - (0.2 + 0.3 * r[5]) * blob(0.4 + 0.1 * r[6], 0.0, 0.06 + 0.08 * r[7], 0.25)  # mouth
        for j in range(3):
            t = t + 0.2 * (r[8 + j] - 0.5) * blob(2 * r[11 + j] - 1, 2 * r[14 - j] - 1, 0.3, 0.3)
        templates.append(t)
    templates = torch.stack(templates)
    lo = templates.amin(dim=(1, 2), keepdim=True)
    templates = (templates - lo) / (templates.amax(dim=(1, 2), keepdim=True) - lo)
    template_labels = torch.rand(k, generator=g) * 2 - 1

    index = torch.randint(k, (n,), generator=g)
    chips = torch.empty(n, size, size, dtype=torch.uint8)
    for begin in range(0, n, 2048):
        idx = index[begin : begin + 2048]
        m = len(idx)
        gain = 0.6 + 0.4 * torch.rand(m, 1, 1, generator=g)
        offset = 0.2 * torch.rand(m, 1, 1, generator=g)
        noise = 0.04 * torch.randn(m, size, size, generator=g)
        x = (templates[idx] * gain + offset + noise).clamp(0, 1)
        chips[begin : begin + m] = (x * 255).round().to(torch.uint8)
    labels = (template_labels[index] + 0.1 * torch.randn(n, generator=g)).clamp(-1, 1)
    return chips, labels.float()


def synthetic_features(n: int, dim: int, seed: int = 1):
    """(float32 features [n,dim] >= 0, smooth over time like ReLU CNN features; labels [n] in [-1,1])."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(1, dim, n + 8, generator=g)
    features = F.relu(F.avg_pool1d(raw, 9, stride=1) * 3.0)[0].T.contiguous()
    walk = torch.cumsum(0.05 * torch.randn(n, generator=g), 0)
    labels = torch.tanh(walk - walk.mean())
    return features.float(), labels.float()
