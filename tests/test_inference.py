"""affectflow.inference: a recording predicted in chunks equals the recording predicted whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.dataset import ChunkFill, apply_fill, feature_prior
from affectflow.inference import Pipeline, PipelineStream
from affectflow.models import CNNConfig, FaceCNN, FrameRNN, RNNConfig

CHUNKS = ((0, 3), (3, 200), (203, 1), (204, 496))


@pytest.mark.parametrize("window", [1, 10])
@pytest.mark.parametrize("feature_norm", ["causal", "train", "recording-transductive"])
def test_streamed_predictions_equal_whole_recording_predictions(feature_norm, window):
    torch.manual_seed(0)
    cnn = FaceCNN(CNNConfig(chip_size=32, channels=(4, 8, 8), fc=6)).eval()
    rnn = FrameRNN(RNNConfig(input_size=6, hidden=5)).eval()
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (700, 32, 32), dtype=np.uint8)
    settings = {
        "feature_norm": feature_norm,
        "feature_prior": feature_prior([rng.normal(size=(50, 6))]),
        "window": window,
        "normalization": "local-mean",
    }
    pipeline = Pipeline(None, "rnn", cnn, rnn, settings, {})
    whole = pipeline.predict_chips(chips)
    stream = PipelineStream(pipeline)
    parts = [stream.push(chips[begin : begin + size]) for begin, size in CHUNKS]
    if feature_norm == "recording-transductive":
        assert sum(len(p) for p in parts) == 0  # it needs every frame before it predicts any
    streamed = np.concatenate(parts + [stream.finish()])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_chunked_fill_equals_whole_recording_fill():
    rng = np.random.default_rng(1)
    values = rng.integers(1, 255, (40, 3, 3), dtype=np.uint8)
    found = rng.random(40) < 0.4
    found[:5] = False
    fill = ChunkFill()
    chunked = np.concatenate([fill(values[b : b + 7], found[b : b + 7]) for b in range(0, 40, 7)])
    np.testing.assert_array_equal(chunked, apply_fill(values, found))
    assert not chunked[:5].any()  # blank before the first face: no frame borrows from the future
