"""The paper's networks (docs/design.md, section 1): the single-frame CNN and the windowed RNN.

FaceCNN (defaults = the paper, from the authors' ck_plus/model.py):
  1xSxS -> conv 64 5x5 pad 2 (no bias) -> ReLU -> maxpool 2 -> conv 128 -> ReLU -> maxpool 2
  -> conv 256 -> ReLU -> quadrant pooling (one max per quadrant of the S/4 x S/4 maps; at
  S=96 exactly max-pool 12x12 stride 12 on 24x24) -> 1024 [-> dropout 0.5 for variants D/AD]
  -> FC 300 ReLU (bias 1) -> linear 1.
Dropout masks the INPUT of the 300-unit layer, as in the authors' code: the script sets
`model.fc4.dropout = 0.5` and anna's DenseLayer masks the layer's input. (Masking the FC
output instead, with its bias of 1, acts as a strong ridge penalty on the output weights
and made variants D/AD collapse to a constant.)
The 300-d ReLU output is the feature the RNN consumes (`features`).

Initialization (CNNConfig.init): "paper" (default) is the authors': one k ~ U(0.2, 1.2)
drawn per model, every weight ~ N(0, (k / sqrt(fan_in))^2), FC-300 bias 1, output bias 0,
convolutions bias-free. A small k shrinks the signal by about k^2/2 per ReLU layer, so some
draws learn very slowly (README, "What the demo found"). "he" is the same law with k = sqrt(2)
(He et al. 2015: the scale that ReLU layers preserve); "pytorch" keeps PyTorch's default
(Kaiming-uniform, about k = 0.58) weights; both with the same biases.

FrameRNN: an Elman RNN (tanh or ReLU; LSTM/GRU optional) over a window of frame
features, with a linear regression output at every step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..contracts import (
    DEFAULT_CHIP_SIZE,
    INITS,
    NONLINEARITIES,
    RECURRENT_INITS,
    RNN_CELLS,
    RNN_LAYERS,
    chip_size_problem,
)

PAPER_CHANNELS = (64, 128, 256)
PAPER_FC = 300
IRNN_INPUT_STD = 0.001  # Le et al.'s input weights; larger ones made stacked IRNNs diverge in the demo
HE_K = 2.0**0.5  # "he": the same normal law with k = sqrt(2), which keeps ReLU activations' scale
PAPER_INIT_K = (0.2, 1.2)  # the range of the authors' per-model weight scale k
# Training-set feature stds below this count as constant features (see FrameRNN.set_standardization).
MIN_FEATURE_STD = 1e-3


@dataclass
class CNNConfig:
    chip_size: int = DEFAULT_CHIP_SIZE
    channels: tuple[int, int, int] = PAPER_CHANNELS
    fc: int = PAPER_FC
    dropout: float = 0.0  # 0.5 for variants D and AD, on the 4*channels[2] pooled features
    init: str = "paper"  # see INITS

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        problem = chip_size_problem(self.chip_size)
        if problem:
            raise ValueError(problem)
        if len(self.channels) != 3:
            raise ValueError(f"the CNN has exactly 3 conv layers, got channels {self.channels}")


def quadrant_pool(maps: torch.Tensor) -> torch.Tensor:
    """One max per spatial quadrant: [N,C,H,W] -> [N, C*4] (C-major, then top-left, top-right, ...).

    For even H,W this is exactly max-pool (H/2)x(W/2) stride H/2 (12x12/12 on the paper's
    24x24 maps); adaptive pooling also covers odd sizes (overlapping middle row/column).
    """
    return F.adaptive_max_pool2d(maps, 2).flatten(1)


class FaceCNN(nn.Module):
    def __init__(self, config: CNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or CNNConfig()
        c1, c2, c3 = self.config.channels
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2, bias=False)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2, bias=False)
        self.conv3 = nn.Conv2d(c2, c3, 5, padding=2, bias=False)
        self.dropout = nn.Dropout(self.config.dropout)
        self.fc = nn.Linear(4 * c3, self.config.fc)
        self.out = nn.Linear(self.config.fc, 1)
        self.init_k = (
            paper_init(self, HE_K if self.config.init == "he" else None)
            if self.config.init in ("paper", "he")
            else None
        )
        nn.init.constant_(self.fc.bias, 1.0)  # the authors' init: ReLU units start active
        nn.init.zeros_(self.out.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N,1,S,S] (or [N,S,S]) normalized chips -> [N, fc] ReLU features.

        In training mode the pooled features are dropped out (variants D/AD); in eval mode,
        as at extraction, nothing is.
        """
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return F.relu(self.fc(self.dropout(quadrant_pool(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N,1,S,S] -> [N] regression output."""
        return self.out(self.features(x)).squeeze(1)


def paper_init(model: nn.Module, k: float | None = None) -> float:
    """The authors' initialization: k ~ U(0.2, 1.2) once (unless `k` is given), then every
    weight W ~ N(0, (k / sqrt(fan_in))^2).

    Draws from torch's global RNG (seeded by the trainer); returns k. Biases are left to the caller.
    """
    k = float(torch.empty(()).uniform_(*PAPER_INIT_K)) if k is None else float(k)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, k / fan_in**0.5)
    return k


@dataclass
class RNNConfig:
    input_size: int = PAPER_FC
    cell: str = "rnn"  # rnn | lstm | gru
    nonlinearity: str = "tanh"  # tanh | relu (Elman RNN only)
    hidden: int = 100
    layers: int = 1
    recurrent_init: str = "pytorch"  # see RECURRENT_INITS
    hidden_sizes: list[int] = field(default_factory=list)  # derived: the per-layer sizes

    def __post_init__(self) -> None:
        if self.recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"unknown recurrent init {self.recurrent_init!r}")
        if self.cell not in RNN_CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(RNN_CELLS)}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"unknown nonlinearity {self.nonlinearity!r}; choose one of {', '.join(NONLINEARITIES)}")
        if self.layers not in RNN_LAYERS:
            raise ValueError(f"layers must be one of {RNN_LAYERS}, got {self.layers}")
        self.hidden_sizes = rnn_hidden_sizes(self.hidden, self.layers)


def rnn_hidden_sizes(hidden: int, layers: int) -> list[int]:
    """The paper's stacks: 1 layer h; 2 layers h, h; 3 layers h, h, h/2 (100/100/50)."""
    sizes = [hidden] * layers
    if layers == 3:
        sizes[2] = max(1, hidden // 2)
    return sizes


class FrameRNN(nn.Module):
    """Window of frame features [N,W,D] -> per-step predictions [N,W].

    Layers are separate modules because the 3-layer stack has unequal sizes; each
    may be an Elman RNN (tanh/ReLU), an LSTM or a GRU. Input features are
    standardized with the training set's mean/std, stored as buffers so that a
    saved model carries them.
    """

    def __init__(self, config: RNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or RNNConfig()
        cfg = self.config
        self.register_buffer("feature_mean", torch.zeros(cfg.input_size))
        self.register_buffer("feature_std", torch.ones(cfg.input_size))
        layers = []
        size_in = cfg.input_size
        for size in cfg.hidden_sizes:
            if cfg.cell == "rnn":
                layers.append(nn.RNN(size_in, size, nonlinearity=cfg.nonlinearity, batch_first=True))
            elif cfg.cell == "lstm":
                layers.append(nn.LSTM(size_in, size, batch_first=True))
            else:
                layers.append(nn.GRU(size_in, size, batch_first=True))
            size_in = size
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(size_in, 1)
        if cfg.recurrent_init == "identity" and cfg.cell == "rnn":
            for layer in self.layers:
                # IRNN (Le, Jaitly & Hinton 2015): the recurrence starts as an integrator, h_t = h_{t-1} + W x_t,
                # with W ~ N(0, 0.001^2) so that the integrated state stays small, also through stacked layers
                nn.init.eye_(layer.weight_hh_l0)
                nn.init.zeros_(layer.bias_hh_l0)
                nn.init.normal_(layer.weight_ih_l0, 0.0, IRNN_INPUT_STD)
                nn.init.zeros_(layer.bias_ih_l0)

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's feature statistics.

        A feature (near) constant on the training set, such as a CNN unit that died, gets
        scale 1 (as scikit-learn's StandardScaler does): dividing by its tiny std would turn
        any variation on new recordings into inputs of 10^4 and more, which blows up the RNN
        (a ReLU one most of all) at evaluation, not in training.
        """
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > MIN_FEATURE_STD, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.feature_mean) / self.feature_std
        for layer in self.layers:
            x, _ = layer(x)
        return self.out(x).squeeze(-1)


def config_dict(config) -> dict:
    data = asdict(config)
    data.pop("hidden_sizes", None)
    if "channels" in data:
        data["channels"] = list(data["channels"])
    return data


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's weights: its identity in feature files and in the RNN model files that
    embed it (affectflow.modelfile.state_sha256)."""
    from ..modelfile import state_sha256

    return state_sha256(model.state_dict())
