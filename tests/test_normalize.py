"""The fused normalization kernels against their numpy/scipy float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.normalize import METHODS, gcn_numpy, normalize_chips, normalize_reference


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


@pytest.mark.parametrize("method", METHODS)
def test_kernel_matches_reference(chips, method):
    ours = normalize_chips(chips, method)
    reference = normalize_reference(chips, method)
    assert ours.dtype == np.float32 and ours.shape == chips.shape
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
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
    for method in METHODS:
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
