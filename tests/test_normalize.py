"""The fused normalization kernels against their numpy/scipy float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.contracts import NORMALIZATIONS
from affectflow.faces.normalize import (
    LOCAL_MEAN_WINDOW,
    gcn_numpy,
    normalize_chips,
    normalize_reference,
)


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    """Real face chips (astronaut, several crops and shifts), random texture, and flat chips."""
    import cv2
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    faces = [cv2.resize(gray[60 + d : 200 + d, 150 + d : 290 + d], (96, 96)) for d in range(0, 40, 4)]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (6, 96, 96), dtype=np.uint8)
    flat = np.stack([np.zeros((96, 96), np.uint8), np.full((96, 96), 200, np.uint8)])
    step = np.zeros((1, 96, 96), np.uint8)
    step[0, :, 48:] = 3  # a faint edge: std below the floor
    return np.concatenate([np.stack(faces), noise, flat, step])


@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_kernel_matches_reference(chips, method):
    ours = normalize_chips(chips, method)
    reference = normalize_reference(chips, method)
    assert ours.dtype == np.float32 and ours.shape == chips.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_float16_output_is_the_rounded_float32(chips, method):
    full = normalize_chips(chips, method)
    half = normalize_chips(chips, method, dtype=np.float16)
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, full.astype(np.float16))


def test_gcn_output_has_zero_mean_unit_std_and_flat_chips_give_zeros(chips):
    out = normalize_chips(chips, "gcn")
    faces = out[:10]
    np.testing.assert_allclose(faces.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(faces.std(axis=(1, 2)), 1, atol=1e-4)
    assert not out[16:18].any()  # zero chips of frames without a face stay zero, not noise


def test_gcn_numpy_baseline_agrees(chips):
    np.testing.assert_allclose(gcn_numpy(chips), normalize_reference(chips, "gcn"), atol=1e-4)


def test_lcn_window_and_sigma_are_honoured(chips):
    for method, kwargs in (("lcn-box", dict(window=5)), ("lcn-gauss", dict(window=7, sigma=1.5))):
        np.testing.assert_allclose(
            normalize_chips(chips, method, **kwargs), normalize_reference(chips, method, **kwargs), atol=1e-5
        )


def test_out_is_filled_in_place_and_threads_agree(chips):
    out = np.empty(chips.shape, np.float32)
    result = normalize_chips(chips, "lcn-gauss", out=out, threads=2)
    assert result is out
    np.testing.assert_array_equal(out, normalize_chips(chips, "lcn-gauss", threads=1))


def test_odd_sizes_and_empty_batches():
    rng = np.random.default_rng(1)
    odd = rng.integers(0, 256, (3, 37, 53), dtype=np.uint8)
    for method in NORMALIZATIONS:
        np.testing.assert_allclose(normalize_chips(odd, method), normalize_reference(odd, method), atol=1e-5)
    assert normalize_chips(np.zeros((0, 96, 96), np.uint8)).shape == (0, 96, 96)


@pytest.mark.parametrize(
    "bad, problem",
    [
        (np.zeros((2, 96, 96), np.float32), "uint8"),
        (np.zeros((96, 96), np.uint8), r"\[N,S,S\]"),
    ],
)
def test_bad_chips_are_named(bad, problem):
    with pytest.raises(ValueError, match=problem):
        normalize_chips(bad)


def test_bad_method_out_and_window_are_named(chips):
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_chips(chips, "zca")
    with pytest.raises(ValueError, match="float32 or float16"):
        normalize_chips(chips, out=np.empty(chips.shape, np.float64))
    with pytest.raises(ValueError, match="shape"):
        normalize_chips(chips, out=np.empty((1, 96, 96), np.float32))
    with pytest.raises(ValueError, match="odd"):
        normalize_chips(chips, "lcn-box", window=4)


# --- local-mean: the authors' Normer3(filter_size=5) as it ran -------------------------------


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_local_mean_kernel_matches_reference(chips, dtype, tolerance):
    # float16: outputs lie in [-2, 2], where a half's rounding step is at most 2 ** -10.
    ours = normalize_chips(chips, "local-mean", dtype=dtype)
    assert ours.dtype == dtype
    reference = normalize_reference(chips, "local-mean")
    np.testing.assert_allclose(ours.astype(np.float32), reference, rtol=0, atol=tolerance)


def test_local_mean_zero_pads_a_constant_image():
    """Constant image: 0 where the 5x5 window is inside, 2v(1 - inside/25) at the border.

    This pins the authors' convolution padding: reflect or edge padding would give 0 everywhere,
    and a mean over the in-image pixels only (count_include_pad=False) would too.
    """
    value, size = 200, 12
    chip = np.full((1, size, size), value, np.uint8)
    radius = LOCAL_MEAN_WINDOW // 2
    inside = np.array([min(i + radius, size - 1) - max(i - radius, 0) + 1 for i in range(size)])  # rows in the window
    expected = 2 * value / 255 * (1 - np.outer(inside, inside) / LOCAL_MEAN_WINDOW**2)
    ours = normalize_chips(chip, "local-mean")[0]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(normalize_reference(chip, "local-mean")[0], expected, rtol=0, atol=1e-6)
    assert not ours[radius:-radius, radius:-radius].any()  # exact zeros away from the border
    assert (ours[:radius] > 0).all() and (ours[:, -radius:] > 0).all()
    assert ours[0, 0] == pytest.approx(2 * value / 255 * 16 / 25)  # a corner window holds 9 of 25 pixels


def test_local_mean_ignores_window_and_takes_any_size():
    rng = np.random.default_rng(2)
    for shape in ((2, 1, 1), (2, 3, 7), (2, 37, 53)):
        tiny = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_allclose(
            normalize_chips(tiny, "local-mean", window=4), normalize_reference(tiny, "local-mean"), atol=1e-5
        )


# --- the torch implementation against the C++ kernel ------------------------------------------

torch = pytest.importorskip("torch")

TORCH_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def resized(chips: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA) for chip in chips])


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("size", [96, 48, 37])  # 37: odd, and not a multiple of anything
@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_torch_matches_kernel(chips, method, size, device):
    from affectflow.nets.normalize_torch import normalize_batch, normalize_uint8

    sized = resized(chips, size)
    assert not sized[-3].any() and (sized[-2] == 200).all()  # the zero and flat chips survive the resize
    expected = normalize_chips(sized, method)
    pixels = torch.from_numpy(sized).to(device)
    ours = normalize_batch(pixels / 255, method)
    assert ours.dtype == torch.float32 and ours.shape == pixels.shape and ours.device == pixels.device
    np.testing.assert_allclose(ours.cpu().numpy(), expected, rtol=0, atol=1e-5)
    channel = normalize_uint8(pixels[:, None], method)  # [N,1,S,S] in, [N,1,S,S] out
    assert channel.shape == (len(sized), 1, size, size)
    np.testing.assert_allclose(channel[:, 0].cpu().numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_torch_lcn_window_sigma_and_rectangular_chips(method):
    from affectflow.nets.normalize_torch import normalize_batch

    rng = np.random.default_rng(3)
    odd = rng.integers(0, 256, (3, 37, 53), dtype=np.uint8)
    kwargs = dict(window=5, sigma=1.5)
    np.testing.assert_allclose(
        normalize_batch(torch.from_numpy(odd) / 255, method, **kwargs).numpy(),
        normalize_chips(odd, method, **kwargs),
        rtol=0,
        atol=1e-5,
    )


def test_torch_smallest_chip_the_kernel_takes_for_lcn():
    from affectflow.nets.normalize_torch import normalize_batch

    # window 9 needs radius 4 < the chip's side: 5 is the smallest (one reflection at each border).
    small = np.random.default_rng(4).integers(0, 256, (4, 5, 5), dtype=np.uint8)
    for method in NORMALIZATIONS:
        np.testing.assert_allclose(
            normalize_batch(torch.from_numpy(small) / 255, method).numpy(), normalize_chips(small, method), atol=1e-5
        )
    with pytest.raises(ValueError, match="odd"):
        normalize_chips(small[:, :4, :4], "lcn-box")
    with pytest.raises(ValueError, match="odd"):
        normalize_batch(torch.from_numpy(small[:, :4, :4]) / 255, "lcn-box")


def test_torch_float16_input_is_computed_in_float32(chips):
    from affectflow.nets.normalize_torch import normalize_batch

    half = (torch.from_numpy(chips) / 255).half()
    for method in NORMALIZATIONS:
        ours = normalize_batch(half, method)
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, normalize_batch(half.float(), method), rtol=0, atol=0)


def test_torch_accepts_augmented_values_and_empty_batches():
    from affectflow.nets.normalize_torch import normalize_batch

    x = torch.rand(3, 1, 48, 48) * 1.2 - 0.1  # after augmentation values may leave [0, 1]
    for method in NORMALIZATIONS:
        out = normalize_batch(x, method)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert normalize_batch(torch.zeros(0, 96, 96), method).shape == (0, 96, 96)


def test_torch_bad_input_is_named():
    from affectflow.nets.normalize_torch import normalize_batch, normalize_uint8

    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_batch(torch.zeros(1, 96, 96), "zca")
    with pytest.raises(ValueError, match=r"\[N,S,S\] or \[N,1,S,S\]"):
        normalize_batch(torch.zeros(1, 3, 96, 96), "gcn")
    with pytest.raises(ValueError, match="float"):
        normalize_batch(torch.zeros(1, 96, 96, dtype=torch.uint8), "gcn")
    with pytest.raises(ValueError, match="uint8"):
        normalize_uint8(torch.zeros(1, 96, 96), "gcn")
    with pytest.raises(ValueError, match="odd"):
        normalize_batch(torch.zeros(1, 96, 96), "lcn-gauss", window=4)


def test_torch_module_needs_only_torch_and_numpy():
    """A bare GPU machine has neither the C++ extension nor scipy nor Snakemake."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('scipy', 'snakemake', 'affectflow._native', 'cv2', 'skimage'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        "import torch\n"
        "from affectflow.nets.normalize_torch import normalize_batch\n"
        "from affectflow.faces.normalize import NORMALIZATIONS\n"
        "for method in NORMALIZATIONS:\n"
        "    normalize_batch(torch.rand(2, 1, 48, 48), method)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
