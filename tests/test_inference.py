"""affectflow.inference.pipeline: a recording predicted in chunks equals the recording predicted whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.data.fill import ChunkFill, apply_fill
from affectflow.inference.pipeline import Pipeline, PipelineStream
from affectflow.modelfile import FaceSettings, PipelineSettings
from affectflow.nets.networks import CNNConfig, FaceCNN, FrameRNN, RNNConfig
from affectflow.nets.rnn_inputs import feature_prior

CHUNKS = ((0, 3), (3, 200), (203, 1), (204, 496))


@pytest.mark.parametrize("window", [1, 10])
@pytest.mark.parametrize("feature_norm", ["causal", "train", "recording-transductive"])
def test_streamed_predictions_equal_whole_recording_predictions(feature_norm, window):
    torch.manual_seed(0)
    cnn = FaceCNN(CNNConfig(chip_size=32, channels=(4, 8, 8), fc=6)).eval()
    rnn = FrameRNN(RNNConfig(input_size=6, hidden=5)).eval()
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (700, 32, 32), dtype=np.uint8)
    settings = PipelineSettings(
        dimension="valence",
        label_shift=0.0,
        normalization="local-mean",
        faces=FaceSettings(chip_size=32),
        weights_sha256="",
        affectflow_version="test",
        window=window,
        feature_norm=feature_norm,
        feature_prior=feature_prior([rng.normal(size=(50, 6))]),
    )
    pipeline = Pipeline(None, "rnn", cnn, rnn, settings, {})
    whole = pipeline.predict_chips(chips)
    stream = PipelineStream(pipeline)
    parts = [stream.push(chips[begin : begin + size]) for begin, size in CHUNKS]
    if feature_norm == "recording-transductive":
        assert sum(len(p) for p in parts) == 0  # it needs every frame before it predicts any
    streamed = np.concatenate(parts + [stream.finish()])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def reference_fill(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """FILL_POLICY as affectflow.data.fill's docstring states it, one frame at a time: a frame without a face
    takes the last found frame's content; frames before the first found face get zeros."""
    filled = np.zeros_like(values)
    last = None
    for t in range(len(values)):
        if found[t]:
            last = values[t]
        if last is not None:
            filled[t] = last
    return filled


# 40 frames: no face in 0-4 (the first chunk of most chunkings has none) nor in 20-31 (whole chunks without one).
FOUND_40 = np.ones(40, bool)
FOUND_40[:5] = FOUND_40[20:32] = False
FOUND_40[[8, 9, 14, 37]] = False
FILL_CHUNKINGS = {
    "whole": [40],
    "frame-by-frame": [1] * 40,
    "sevens": [7, 7, 7, 7, 7, 5],
    "faceless-first-empty-gap": [5, 0, 3, 12, 4, 4, 4, 8],  # an empty chunk, and two inside the 20-31 gap
    "uneven": [2, 2, 1, 10, 5, 2, 10, 8],
    "empty-first": [0, 3, 37],
}


def chunked_fill(values: np.ndarray, found: np.ndarray, sizes: list[int]) -> np.ndarray:
    assert sum(sizes) == len(values)
    fill, parts, begin = ChunkFill(), [], 0
    for size in sizes:
        part = fill(values[begin : begin + size], found[begin : begin + size])
        assert part.shape == (size, *values.shape[1:]) and part.dtype == values.dtype
        parts.append(part)
        begin += size
    return np.concatenate(parts)


@pytest.mark.parametrize("sizes", FILL_CHUNKINGS.values(), ids=FILL_CHUNKINGS.keys())
@pytest.mark.parametrize("dtype, shape", [(np.uint8, (3, 3)), (np.float32, (5,))], ids=["chips", "features"])
def test_chunked_fill_equals_a_frame_by_frame_reference(sizes, dtype, shape):
    rng = np.random.default_rng(1)
    values = rng.uniform(1, 255, (40, *shape)).astype(dtype)  # no zero: a blank frame differs from any held one
    expected = reference_fill(values, FOUND_40)
    assert not expected[:5].any() and (expected[20:32] == values[19]).all()  # the reference does what it says
    np.testing.assert_array_equal(chunked_fill(values, FOUND_40, sizes), expected)
    np.testing.assert_array_equal(apply_fill(values, FOUND_40), expected)


@pytest.mark.parametrize("seed", range(20))
def test_chunked_fill_equals_the_reference_on_random_faces_and_chunks(seed):
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(1, 60))
    values = rng.integers(1, 255, (frames, 2, 2)).astype(np.uint8)
    found = rng.random(frames) < rng.uniform(0.1, 0.6)
    found[: rng.integers(0, frames + 1)] = False  # sometimes no face at all: every frame blank
    cuts = np.sort(rng.integers(0, frames + 1, int(rng.integers(0, 8))))
    sizes = list(np.diff(np.r_[0, cuts, frames]))  # chunks of any size, empty ones included
    np.testing.assert_array_equal(chunked_fill(values, found, sizes), reference_fill(values, found))
