"""Mean subtraction and contrast normalization of face chips (docs/design.md, sections 1 and 4).

The pipeline's normalization is a config choice (``--normalization``); ``x`` is the
chip on the [0, 1] scale (uint8 / 255):

- ``"gcn"``: global contrast normalization, per image: ``(x - mean) / max(std, eps)``,
  population std.
- ``"lcn-box"`` / ``"lcn-gauss"``: local contrast normalization, with a ``window`` x
  ``window`` box or a Gaussian window (``sigma``, radius ``window // 2``):
  ``c = x - local_mean``, ``s = sqrt(local mean of c**2)``, output
  ``c / max(s, max(mean(s), eps))`` (Jarrett et al. 2009: the floor is the image's mean
  local std, so flat regions are not blown up). Borders reflect as scipy.ndimage's
  default ``"reflect"`` (d c b a | a b c d | d c b a).
- ``"local-mean"``: the authors' normalization (Khorrami et al. 2016, ifp-uiuc code,
  ``Normer3(filter_size=5)``) as it actually ran: ``2x - box5(2x)``, i.e. the pixel on
  the authors' [0, 2] scale minus its 5x5 local mean, with ZERO padding (their cuDNN
  convolution with ``border_mode=(2, 2)``: at the borders the sum over the in-image
  pixels is still divided by 25), and no division (their code divides by the local std
  ``** (1/2)``, which is ``** 0`` under Python 2's integer division). The window is
  fixed at :data:`LOCAL_MEAN_WINDOW`; ``window``, ``sigma`` and ``eps`` do not apply.
  Its output is on the authors' [0, 2] pixel scale, not unit variance.
- ``"none"``: ``x`` itself, in [0, 1], no mean subtraction.

``eps`` (default one grey level, 1/255) floors the std of gcn and lcn so that flat
chips (e.g. the all-zero chips of frames without a face) map to zeros instead of
noise. :func:`normalize_chips` is the fused C++ kernel (OpenMP over images, GIL
released); :func:`normalize_reference` is the straightforward numpy/scipy float64
version that tests and benchmarks compare against;
:func:`affectflow.nets.normalize_torch.normalize_batch` is the batched torch version for the
device, after augmentation.
"""

from __future__ import annotations

import numpy as np

from ..contracts import NORMALIZATIONS

DEFAULT_EPS = 1.0 / 255.0
DEFAULT_WINDOW = 9
DEFAULT_SIGMA = 2.0
LOCAL_MEAN_WINDOW = 5  # the authors' Normer3 filter_size; csrc/normalize.h kLocalMeanWindow


def _check_chips(chips: np.ndarray) -> np.ndarray:
    chips = np.asarray(chips)
    if chips.dtype != np.uint8:
        raise ValueError(f"chips must be uint8, got {chips.dtype}")
    if chips.ndim != 3:
        raise ValueError(f"chips must be [N,S,S], got shape {chips.shape}")
    return np.ascontiguousarray(chips)


def _check_method(method: str) -> None:
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {', '.join(NORMALIZATIONS)}")


def normalize_chips(
    chips: np.ndarray,
    method: str = "gcn",
    *,
    dtype: np.dtype | type = np.float32,
    out: np.ndarray | None = None,
    eps: float = DEFAULT_EPS,
    window: int = DEFAULT_WINDOW,
    sigma: float = DEFAULT_SIGMA,
    threads: int | None = None,
) -> np.ndarray:
    """Normalize uint8 chips [N,S,S] to float32 (or float16) [N,S,S] in one fused native pass.

    ``out`` (C-contiguous float32/float16 of the same shape) is filled in place when given.
    """
    from .. import _native

    _check_method(method)
    chips = _check_chips(chips)
    if out is None:
        out = np.empty(chips.shape, dtype=np.dtype(dtype))
    _native.normalize_into(chips, out, method, eps=eps, window=window, sigma=sigma, threads=threads or 0)
    return out


def _local_filter(image: np.ndarray, method: str, window: int, sigma: float) -> np.ndarray:
    from scipy import ndimage

    if method == "lcn-box":
        return ndimage.uniform_filter(image, size=window, mode="reflect")
    return ndimage.gaussian_filter(image, sigma=sigma, radius=window // 2, mode="reflect")


def normalize_reference(
    chips: np.ndarray,
    method: str = "gcn",
    *,
    eps: float = DEFAULT_EPS,
    window: int = DEFAULT_WINDOW,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """The numpy/scipy float64 reference of :func:`normalize_chips` (returned as float32)."""
    _check_method(method)
    x = _check_chips(chips).astype(np.float64) / 255.0
    if method == "none":
        return x.astype(np.float32)
    if method == "local-mean":
        from scipy import ndimage

        # mode="constant", cval=0: the zero-padded box mean (border sums still divided by 25).
        pixels = 2.0 * x  # the authors' [0, 2] scale
        box = (1, LOCAL_MEAN_WINDOW, LOCAL_MEAN_WINDOW)  # per image: no filtering across the batch axis
        return (pixels - ndimage.uniform_filter(pixels, size=box, mode="constant", cval=0.0)).astype(np.float32)
    if method == "gcn":
        mean = x.mean(axis=(1, 2), keepdims=True)
        std = x.std(axis=(1, 2), keepdims=True)
        return ((x - mean) / np.maximum(std, eps)).astype(np.float32)
    result = np.empty(x.shape, dtype=np.float32)
    for i, image in enumerate(x):
        centred = image - _local_filter(image, method, window, sigma)
        local_std = np.sqrt(np.maximum(_local_filter(centred**2, method, window, sigma), 0.0))
        floor = max(local_std.mean(), eps)
        result[i] = centred / np.maximum(local_std, floor)
    return result


def gcn_numpy(chips: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """The straightforward float32 numpy GCN (the benchmark's baseline)."""
    x = chips.astype(np.float32) / np.float32(255.0)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return (x - mean) / np.maximum(std, np.float32(eps))
