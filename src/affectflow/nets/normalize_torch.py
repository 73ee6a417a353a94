"""Every chip normalization of :mod:`affectflow.faces.normalize` as batched torch ops, on any device.

Training normalizes on the device after augmentation (affectflow.nets.augment), and extraction
can do the same; both must give what the C++ kernel (:func:`affectflow.faces.normalize.normalize_chips`)
gives, so this module follows the kernel step by step (same definitions, same float32 weights,
same tap order, same per-image integer offset) and agrees with it within 1e-5 for
``x = chips / 255``. It needs only torch: no C++ extension, no scipy, no Snakemake, so a bare
GPU machine runs it.

Design choices, and why:

- The separable filters of lcn are sums of shifted slices (one multiply-add per tap), not
  ``conv2d``: cuDNN convolutions run in TF32 by default on Ampere and newer GPUs (about
  1e-3 relative error) and choose their algorithm per shape; the slices are plain float32
  arithmetic, deterministic, and the same on CPU and CUDA.
- The lcn borders reflect as scipy.ndimage's ``"reflect"`` (d c b a | a b c d | d c b a,
  the edge pixel repeated), which is NOT ``F.pad(mode="reflect")`` (d c b | a b c d | c b a);
  the padding is written as an index gather so it matches exactly.
- gcn and lcn work in grey levels (x * 255) about each image's rounded mean, as the kernel
  does: pixels of flat regions stay exact there, so they come out as exact zeros instead of
  rounding noise divided by the ``eps`` floor.
- local-mean is ``avg_pool2d`` with zero padding counted in the divisor (always / 25), as the
  authors' zero-padded convolution.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..contracts import NORMALIZATIONS
from ..faces.normalize import DEFAULT_EPS, DEFAULT_SIGMA, DEFAULT_WINDOW, LOCAL_MEAN_WINDOW

__all__ = ["normalize_batch", "normalize_uint8"]


def _check_method(method: str) -> None:
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {', '.join(NORMALIZATIONS)}")


def _as_images(x: torch.Tensor) -> torch.Tensor:
    """[N,S,S] or [N,1,S,S] -> an [N,S,S] view (the caller restores the shape)."""
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 3:
        return x
    raise ValueError(f"chips must be [N,S,S] or [N,1,S,S], got shape {tuple(x.shape)}")


def _check_local_window(method: str, window: int, sigma: float, rows: int, cols: int) -> None:
    # The kernel's conditions (csrc/normalize.cpp normalize_all), with its messages.
    if window < 1 or window % 2 == 0 or window // 2 >= min(rows, cols):
        raise ValueError("the local window must be odd and smaller than the chip")
    if method == "lcn-gauss" and not sigma > 0:
        raise ValueError("sigma must be positive")


def _window_weights(method: str, window: int, sigma: float) -> list[float]:
    """The kernel's float32 taps: computed in double, normalized, then rounded to float32."""
    radius = window // 2
    if method == "lcn-gauss":
        raw = [math.exp(-0.5 * k * k / (sigma * sigma)) for k in range(-radius, radius + 1)]
    else:
        raw = [1.0] * window
    total = sum(raw)
    # Round trip through a float32 tensor: the Python floats are then exactly the kernel's taps.
    return torch.tensor([w / total for w in raw], dtype=torch.float32).tolist()


def _reflect_indices(size: int, radius: int, device: torch.device) -> torch.Tensor:
    """Source indices of scipy's "reflect" padding, (d c b a | a b c d | d c b a), period 2 * size."""
    position = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(position < size, position, 2 * size - 1 - position)


def _separable_filter(images: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """The kernel's separable filter of [N,H,W] images: rows, then columns, reflect borders.

    Each pass sums the taps in the kernel's order: w[0] * the first shifted slice, then one
    in-place multiply-add (``add_(alpha=w[k])``) per further tap, one elementwise kernel each.
    """
    radius = len(weights) // 2
    rows, cols = images.shape[-2:]
    padded = images.index_select(-1, _reflect_indices(cols, radius, images.device))
    horizontal = padded[..., :, 0:cols] * weights[0]
    for k in range(1, len(weights)):
        horizontal.add_(padded[..., :, k : k + cols], alpha=weights[k])
    padded = horizontal.index_select(-2, _reflect_indices(rows, radius, images.device))
    result = padded[..., 0:rows, :] * weights[0]
    for k in range(1, len(weights)):
        result.add_(padded[..., k : k + rows, :], alpha=weights[k])
    return result


def _centred_on_rounded_mean(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(grey - offset, offset) with offset each image's mean rounded half up to a whole grey level.

    As the kernel: subtracting a whole number keeps uint8-derived pixels exact integers, so
    flat regions stay exactly flat; the sum is float64 so that the offset is exact too.
    """
    count = grey.shape[-2] * grey.shape[-1]
    total = grey.sum(dim=(-2, -1), dtype=torch.float64)
    offset = torch.floor((total + count // 2) / count)  # the kernel's (sum + n / 2) / n
    return grey - offset.to(torch.float32)[:, None, None], total / count - offset


def _global_contrast(grey: torch.Tensor, eps: float) -> torch.Tensor:
    centred, mean_rest = _centred_on_rounded_mean(grey)  # mean_rest: the mean left, in [-0.5, 0.5]
    count = grey.shape[-2] * grey.shape[-1]
    mean_square = (centred * centred).sum(dim=(-2, -1), dtype=torch.float64) / count
    std = (mean_square - mean_rest * mean_rest).clamp_min(0.0).sqrt()  # population std, grey levels
    inverse = 1.0 / std.clamp_min(eps * 255.0)
    return (centred - mean_rest.to(torch.float32)[:, None, None]) * inverse.to(torch.float32)[:, None, None]


def _local_contrast(grey: torch.Tensor, method: str, eps: float, window: int, sigma: float) -> torch.Tensor:
    weights = _window_weights(method, window, sigma)
    centred, _ = _centred_on_rounded_mean(grey)
    centred = centred - _separable_filter(centred, weights)
    deviation = _separable_filter(centred * centred, weights).clamp_min_(0.0).sqrt_()
    # The floor: each image's mean local std, at least eps (in grey levels).
    floor = deviation.mean(dim=(-2, -1), dtype=torch.float64).clamp_min(eps * 255.0)
    return centred / torch.maximum(deviation, floor.to(torch.float32)[:, None, None])


def _local_mean(x: torch.Tensor) -> torch.Tensor:
    """The authors' Normer3: 2x minus its zero-padded 5x5 box mean (always divided by 25)."""
    pixels = 2.0 * x[:, None]  # the authors' [0, 2] scale; avg_pool2d wants [N,C,H,W]
    box_mean = F.avg_pool2d(
        pixels,
        LOCAL_MEAN_WINDOW,
        stride=1,
        padding=LOCAL_MEAN_WINDOW // 2,
        count_include_pad=True,
        divisor_override=LOCAL_MEAN_WINDOW * LOCAL_MEAN_WINDOW,
    )
    return (pixels - box_mean)[:, 0]


def _normalize(images: torch.Tensor, grey: torch.Tensor, method: str, eps: float, window: int, sigma: float):
    """``images`` [N,H,W] float32 on the [0, 1] scale, ``grey`` the same in grey levels (* 255)."""
    if method == "none":
        return images.clone()
    if method == "local-mean":
        return _local_mean(images)
    if method == "gcn":
        return _global_contrast(grey, eps)
    _check_local_window(method, window, sigma, images.shape[-2], images.shape[-1])
    return _local_contrast(grey, method, eps, window, sigma)


def normalize_batch(
    x: torch.Tensor,
    method: str,
    *,
    eps: float = DEFAULT_EPS,
    window: int = DEFAULT_WINDOW,
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """Normalize float chips [N,1,S,S] or [N,S,S] on the [0, 1] scale (uint8 / 255) with ``method``.

    Values slightly outside [0, 1] (after augmentation) are fine. float16 input is computed in
    float32. Returns a new float32 tensor of ``x``'s shape on ``x``'s device, equal to
    :func:`affectflow.faces.normalize.normalize_chips` within 1e-5 for ``x = chips / 255``.
    """
    _check_method(method)
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor on the [0, 1] scale, got {x.dtype} (see normalize_uint8)")
    images = _as_images(x).to(torch.float32)
    return _normalize(images, images * 255.0, method, eps, window, sigma).reshape(x.shape)


def normalize_uint8(
    chips: torch.Tensor,
    method: str,
    *,
    eps: float = DEFAULT_EPS,
    window: int = DEFAULT_WINDOW,
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """:func:`normalize_batch` of uint8 chips [N,S,S] or [N,1,S,S], divided by 255 first.

    The grey levels gcn and lcn work in are taken from the uint8 values themselves, exact:
    on CUDA ``chips / 255`` multiplies by a rounded 1/255, and ``* 255`` does not always give
    the integer back.
    """
    _check_method(method)
    if chips.dtype != torch.uint8:
        raise ValueError(f"chips must be uint8, got {chips.dtype}")
    grey = _as_images(chips).to(torch.float32)
    return _normalize(grey / 255.0, grey, method, eps, window, sigma).reshape(chips.shape)
