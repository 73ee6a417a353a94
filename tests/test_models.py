"""The paper's CNN and RNN: shapes, parameter counts by hand, quadrant pooling, augmentation."""

import pytest
import torch
from torch.nn import functional as F

from affectflow.nets.augment import augment_batch
from affectflow.nets.networks import (
    CNNConfig,
    FaceCNN,
    FrameRNN,
    RNNConfig,
    quadrant_pool,
    rnn_hidden_sizes,
)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_cnn_shapes_and_parameter_count():
    model = FaceCNN()
    x = torch.zeros(2, 1, 96, 96)
    assert model(x).shape == (2,)
    assert model.features(x).shape == (2, 300)
    # by hand: bias-free convs 1*64*25 + 64*128*25 + 128*256*25, FC 1024*300 + 300, output 300 + 1
    expected = 1 * 64 * 25 + 64 * 128 * 25 + 128 * 256 * 25 + (4 * 256) * 300 + 300 + 300 + 1
    assert n_params(model) == expected == 1_333_401
    assert model.conv1.bias is None and model.conv2.bias is None and model.conv3.bias is None
    assert torch.all(model.fc.bias == 1.0)


def test_dropout_masks_the_input_of_the_fc_layer_not_its_output():
    """The authors' anna DenseLayer drops its INPUT (model.fc4.dropout = 0.5): the 1024 pooled features."""
    torch.manual_seed(0)
    model = FaceCNN(CNNConfig(chip_size=32, channels=(4, 8, 16), fc=20, dropout=0.5)).train()
    seen = {}
    model.fc.register_forward_hook(lambda module, inputs, output: seen.update(fc_in=inputs[0], fc_out=output))
    model.out.register_forward_hook(lambda module, inputs, output: seen.update(out_in=inputs[0]))
    model(torch.rand(6, 1, 32, 32) + 0.1)
    zero_in = (seen["fc_in"] == 0).float().mean()
    assert 0.3 < zero_in < 0.7  # about half of the (positive after ReLU) pooled features are dropped
    surviving = seen["fc_in"][seen["fc_in"] != 0]
    assert torch.all(surviving > 0)  # the survivors are scaled by 1/(1-p), never masked to 0 again
    # the output layer sees the ReLU of FC exactly: no second mask between FC and the output
    assert torch.equal(seen["out_in"], torch.relu(seen["fc_out"]))
    model.eval()
    model(torch.rand(6, 1, 32, 32) + 0.1)
    assert (seen["fc_in"] == 0).float().mean() < 0.3  # no dropout at evaluation


def test_paper_initialization_statistics():
    """One k ~ U(0.2, 1.2) per model, every weight ~ N(0, (k/sqrt(fan_in))^2), biases 1 (FC) and 0 (out)."""
    ks = []
    for seed in range(40):
        torch.manual_seed(seed)
        model = FaceCNN()
        k = model.init_k
        ks.append(k)
        if seed < 3:
            for layer, fan_in in (
                (model.conv1, 25),
                (model.conv2, 64 * 25),
                (model.conv3, 128 * 25),
                (model.fc, 1024),
                (model.out, 300),
            ):
                w = layer.weight.detach()
                assert float(w.mean()) == pytest.approx(0.0, abs=4 * k / fan_in**0.5 / w.numel() ** 0.5 + 1e-6)
                # the output layer has only 300 weights: a wider tolerance on its spread
                tolerance = 0.15 if layer is model.out else 0.05
                assert float(w.std()) == pytest.approx(k / fan_in**0.5, rel=tolerance)
            assert torch.all(model.fc.bias == 1.0) and torch.all(model.out.bias == 0.0)
    assert 0.2 <= min(ks) and max(ks) <= 1.2 and max(ks) - min(ks) > 0.5  # drawn per model, not fixed
    torch.manual_seed(0)
    he = FaceCNN(CNNConfig(init="he"))
    assert he.init_k == pytest.approx(2**0.5)
    assert float(he.conv3.weight.detach().std()) == pytest.approx(2**0.5 / (128 * 25) ** 0.5, rel=0.05)
    torch.manual_seed(0)
    default = FaceCNN(CNNConfig(init="pytorch"))
    assert default.init_k is None and torch.all(default.fc.bias == 1.0)
    with pytest.raises(ValueError):
        CNNConfig(init="xavier")


def test_small_cnn_any_chip_size_divisible_by_4():
    model = FaceCNN(CNNConfig(chip_size=36, channels=(4, 8, 16), fc=20, dropout=0.5))
    assert model.features(torch.zeros(3, 1, 36, 36)).shape == (3, 20)
    assert n_params(model) == 4 * 25 + 4 * 8 * 25 + 8 * 16 * 25 + 64 * 20 + 20 + 20 + 1
    with pytest.raises(ValueError):
        CNNConfig(chip_size=50)


def test_quadrant_pooling_on_crafted_input():
    maps = torch.zeros(1, 2, 24, 24)
    maps[0, 0, 3, 4] = 1.0  # top-left
    maps[0, 0, 5, 20] = 2.0  # top-right
    maps[0, 0, 13, 1] = 3.0  # bottom-left
    maps[0, 0, 23, 23] = 4.0  # bottom-right
    maps[0, 1, 11, 11] = 7.0  # channel 1: top-left edge of its quadrant
    maps[0, 1, 12, 12] = 8.0  # bottom-right
    pooled = quadrant_pool(maps)
    assert pooled.tolist() == [[1.0, 2.0, 3.0, 4.0, 7.0, 0.0, 0.0, 8.0]]
    # identical to the paper's 12x12 stride 12 max-pool on 24x24 maps
    random_maps = torch.randn(3, 5, 24, 24)
    assert torch.equal(quadrant_pool(random_maps), F.max_pool2d(random_maps, 12, 12).flatten(1))


@pytest.mark.parametrize(
    "cell,nonlinearity,layers,sizes",
    [
        ("rnn", "tanh", 1, [100]),
        ("rnn", "relu", 2, [100, 100]),
        ("rnn", "tanh", 3, [100, 100, 50]),
        ("lstm", "tanh", 1, [100]),
        ("gru", "tanh", 3, [100, 100, 50]),
    ],
)
def test_rnn_shapes_and_sizes(cell, nonlinearity, layers, sizes):
    model = FrameRNN(RNNConfig(input_size=300, cell=cell, nonlinearity=nonlinearity, hidden=100, layers=layers))
    assert model.config.hidden_sizes == sizes
    assert model(torch.zeros(4, 25, 300)).shape == (4, 25)
    if cell == "rnn" and layers == 1:  # Elman: W_ih 300x100, W_hh 100x100, two biases, output 101
        assert n_params(model) == 300 * 100 + 100 * 100 + 2 * 100 + 101


def test_irnn_recurrent_init_starts_as_an_integrator():
    model = FrameRNN(RNNConfig(input_size=4, hidden=6, layers=2, nonlinearity="relu", recurrent_init="identity"))
    for layer in model.layers:
        assert torch.equal(layer.weight_hh_l0, torch.eye(6)) and torch.all(layer.bias_hh_l0 == 0)
        assert float(layer.weight_ih_l0.detach().abs().max()) < 0.01 and torch.all(layer.bias_ih_l0 == 0)
    default = FrameRNN(RNNConfig(input_size=4, hidden=6))
    assert not torch.equal(default.layers[0].weight_hh_l0, torch.eye(6))
    with pytest.raises(ValueError):
        RNNConfig(recurrent_init="orthogonal")


def test_rnn_hidden_sizes_three_layers_halve_the_last():
    assert rnn_hidden_sizes(200, 3) == [200, 200, 100]


def test_augmentation_is_seeded_and_keeps_shape():
    x = torch.randn(8, 1, 32, 32)
    torch.manual_seed(0)
    a = augment_batch(x)
    torch.manual_seed(0)
    b = augment_batch(x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, x)
    assert torch.isfinite(a).all()
