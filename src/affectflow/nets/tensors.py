"""Tensor primitives that training and inference share: one definition of each, below both.

- :func:`resolve_device`: the ``--device`` choice (auto = CUDA when present).
- :func:`chips_to_inputs`: raw uint8 chips -> [0, 1] -> (augmented) -> normalized CNN inputs, the
  authors' order, on every batch, in training and at extraction alike.
- :func:`cnn_forward`: one batched CNN forward pass giving the 300-d features and the regression
  output; the trainer's per-epoch scoring and extraction/prediction both call it.
- :func:`edge_pad` and :func:`rnn_window_predictions`: the RNN's window [t-W+1, t] of frame t,
  edge-padded before the first frame, in training and at prediction alike.

affectflow.learning.loop and affectflow.inference.pipeline import this module; it imports neither.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import AffectflowError
from .networks import FaceCNN, FrameRNN


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AffectflowError("--device cuda: no CUDA device available")
    return torch.device(name)


def chips_to_inputs(chips: torch.Tensor, normalization: str, augment: bool = False) -> torch.Tensor:
    """uint8 (or float16 0..255) chips [N,S,S] on the device -> normalized CNN inputs [N,1,S,S] float32.

    Pixels are scaled to [0, 1], augmented on the raw chips when asked, and only then
    normalized: train and test inputs go through the same normalization code (the authors'
    order: augment, then normalize).
    """
    from .augment import augment_batch
    from .normalize_torch import normalize_batch

    x = chips.unsqueeze(1).float() * (1.0 / 255.0)
    if augment:
        x = augment_batch(x)
    return normalize_batch(x, normalization)


def cnn_forward(
    model: FaceCNN, chips, normalization: str, batch_size: int = 512, features: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """Raw uint8 chips [T,S,S] (numpy or tensor, anywhere; face-lost frames already filled) ->
    (features float32 [T,fc] or None, prediction float32 [T]), in batches, without gradients.

    The caller chooses the model's mode (eval for scoring and extraction); inputs are channels-last,
    the layout the trainer uses, and CUDA runs under autocast as in training.
    """
    device = next(model.parameters()).device
    chips = torch.as_tensor(chips)
    feats, preds = [], []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for begin in range(0, len(chips), batch_size):
            x = chips_to_inputs(chips[begin : begin + batch_size].to(device), normalization)
            f = model.features(x.contiguous(memory_format=torch.channels_last))
            if features:
                feats.append(f.float().cpu())
            preds.append(model.out(f).squeeze(1).float().cpu())
    if not preds:
        return (np.zeros((0, model.config.fc), np.float32) if features else None), np.zeros(0, np.float32)
    return (torch.cat(feats).numpy() if features else None), torch.cat(preds).numpy()


def edge_pad(features: torch.Tensor, window: int) -> torch.Tensor:
    """Features [T,D] preceded by W-1 copies of the first frame: the window [t-W+1, t] of frame t
    starts at padded index t. Training and prediction pad alike."""
    return torch.cat([features[:1].expand(window - 1, -1), features], 0)


def rnn_window_predictions(
    model: FrameRNN, features: torch.Tensor, window: int, batch_size: int = 512, stride: int = 1
) -> np.ndarray:
    """Prediction for frame t (every `stride`-th frame): the RNN's last output over frames [t-W+1, t].

    Windows reaching before the first frame repeat it (edge padding).
    """
    device = features.device
    padded = edge_pad(features, window)
    steps = torch.arange(window, device=device)
    outs = []
    with torch.no_grad():
        for begin in range(0, len(features), batch_size * stride):
            ends = torch.arange(begin, min(begin + batch_size * stride, len(features)), stride, device=device)
            x = padded[ends[:, None] + steps[None, :]]
            outs.append(model(x)[:, -1].float())
    return torch.cat(outs).cpu().numpy() if outs else np.zeros(0, np.float32)
