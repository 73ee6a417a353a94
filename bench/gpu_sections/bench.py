"""The sizes of a run and the Bench context every section gets.

The networks' and the optimizer's settings are the package's own defaults (CNNConfig,
RNNConfig, TrainSettings, contracts.DEFAULT_NORMALIZATION, the batch sizes of cnn_forward and
rnn_window_predictions); only the step counts, the synthetic data sizes and the bench's
own choices (the throughput lr, the recipe grid) are spelled here.
"""

from __future__ import annotations

import inspect
import time

import torch

from affectflow.contracts import CNN_VARIANTS, DEFAULT_NORMALIZATION
from affectflow.learning.loop import cnn_optimizer, make_cnn_step
from affectflow.learning.settings import TrainSettings
from affectflow.nets.networks import CNNConfig, FaceCNN, FrameRNN, RNNConfig
from affectflow.nets.tensors import cnn_forward, rnn_window_predictions

from .data import synthetic_chips, synthetic_features
from .timing import timed_loop

# The CNN variants measured (of affectflow.contracts.CNN_VARIANTS): neither augmentation nor dropout, and both.
VARIANTS = ("plain", "AD")
# The throughput rows train at this lr: the paper's (TrainSettings.lr) diverges at paper size (paper_recipe).
THROUGHPUT_LR = 0.002
# The paper's RNN window W (train-rnn --window's default; config/*.yaml rnn.base.window).
RNN_WINDOW = 100


def default_of(function, parameter: str):
    """A package function's default for one of its parameters (the batch sizes of the tensor primitives)."""
    return inspect.signature(function).parameters[parameter].default


def sizes(args, cuda: bool) -> dict:
    """Problem sizes and step counts: the paper's on CUDA; tiny counts on CPU; --quick shrinks everything."""
    cnn, rnn, train = CNNConfig(), RNNConfig(), TrainSettings(epochs=1)
    s = dict(
        chip_size=cnn.chip_size,
        channels=list(cnn.channels),
        fc=cnn.fc,
        batch_size=train.batch_size,
        frames=20000,
        extract_frames=15000,
        extract_batch=default_of(cnn_forward, "batch_size"),
        normalization=DEFAULT_NORMALIZATION,
        throughput_lr=THROUGHPUT_LR,
        recipe_steps=300,
        recipe_lrs=[train.lr, 0.005, 0.002],
        recipe_clips=[0.0, 1.0],
        recipe_seeds=[0, 1, 2],
        rnn_hidden=rnn.hidden,
        rnn_window=RNN_WINDOW,
        rnn_batch=train.batch_size,
        rnn_frames=20000,
        rnn_infer_frames=15000,
        rnn_infer_batch=default_of(rnn_window_predictions, "batch_size"),
        warmup=10,
        steps=100,
        pipeline_steps=50,
        max_loop_s=25.0,
    )
    if not cuda:
        s.update(frames=512, extract_frames=512, rnn_frames=2048, rnn_infer_frames=512, max_loop_s=60.0)
        s.update(warmup=1, steps=2, pipeline_steps=2, recipe_steps=3)
        s.update(recipe_lrs=[train.lr], recipe_clips=[0.0], recipe_seeds=[0])
    if args.quick:
        s.update(chip_size=32, channels=[4, 8, 16], fc=32, batch_size=16, frames=256, extract_frames=256)
        s.update(extract_batch=64, rnn_hidden=16, rnn_window=10, rnn_batch=16, rnn_frames=512)
        s.update(rnn_infer_frames=256, rnn_infer_batch=64, warmup=1, steps=3, pipeline_steps=3, recipe_steps=3)
    if args.steps:
        s["steps"] = s["pipeline_steps"] = args.steps
    if args.warmup is not None:
        s["warmup"] = args.warmup
    s["rnn_input"] = s["fc"]  # the RNN reads the CNN's features
    return s


class Bench:
    """What the sections share: arguments, device, sizes, the result being filled, the synthetic chips
    on the device (train_x uint8 [N,S,S], train_y [N]; chips_host on the CPU) and the budget."""

    def __init__(self, args, device: torch.device, result: dict, started: float) -> None:
        self.args, self.device, self.result = args, device, result
        self.cuda = device.type == "cuda"
        self.s = sizes(args, self.cuda)
        self.started = started  # the run's start, for --budget-s
        torch.manual_seed(0)
        chips, labels = synthetic_chips(self.s["frames"], self.s["chip_size"])
        self.chips_host = chips  # uint8 CPU tensor
        self.train_x = chips.to(device)
        self.train_y = labels.to(device)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def loop_cap(self) -> float:
        """Seconds one timed loop may take: max_loop_s, less when the --budget-s runs short."""
        left = self.args.budget_s - self.elapsed() - 60.0
        return max(1.0, min(self.s["max_loop_s"], left / 8))

    def timed(self, fn, steps: int | None = None) -> tuple[int, float, object]:
        """fn(k) timed: the run's warm-up, `steps` (default the run's) timed calls, within loop_cap()."""
        return timed_loop(fn, self.s["warmup"], steps or self.s["steps"], self.device, self.loop_cap())

    def batches(self, batch_size: int, n: int, seed: int = 0):
        """k -> the k-th batch of indices into n items (one fixed random order on the device, wrapping)."""
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g).to(self.device)
        span = n - batch_size + 1

        def batch(k: int) -> torch.Tensor:
            start = (k * batch_size) % span
            return order[start : start + batch_size]

        return batch

    def cnn_model(self, dropout: float = 0.0, seed: int = 0, **config) -> FaceCNN:
        """The CNN at the run's size (other CNNConfig fields: `config`, else the defaults), training mode."""
        s = self.s
        torch.manual_seed(seed)
        size = dict(chip_size=s["chip_size"], channels=tuple(s["channels"]), fc=s["fc"])
        return FaceCNN(CNNConfig(**size, dropout=dropout, **config)).to(self.device).train()

    def cnn_step(
        self,
        variant: str,
        *,
        amp: bool | None = None,
        channels_last: bool = True,
        lr: float | None = None,
        clip_norm: float | None = None,
        seed: int = 0,
        **config,
    ):
        """(model, step) of a CNN variant: affectflow.learning.loop's training step on the synthetic chips.

        amp=None is the trainer's default (on with CUDA); amp=False also drops the GradScaler;
        `config`: CNNConfig fields for cnn_model.
        """
        augment, dropout = CNN_VARIANTS[variant]
        model = self.cnn_model(dropout, seed, **config)
        settings = TrainSettings(
            epochs=1,
            batch_size=self.s["batch_size"],
            lr=self.s["throughput_lr"] if lr is None else lr,
            clip_norm=clip_norm,
        )
        optimizer, scaler = cnn_optimizer(model, settings, self.device)
        if amp is False:
            scaler = None  # AMP off: plain fp32 SGD, no loss scaling
        step = make_cnn_step(
            model,
            optimizer,
            scaler,
            self.train_x,
            self.train_y,
            augment,
            self.device,
            normalization=self.s["normalization"],
            amp=amp,
            channels_last=channels_last,
            clip_norm=settings.clip_norm,
        )
        return model, step

    def rnn(self) -> tuple[FrameRNN, torch.Tensor, torch.Tensor]:
        """(RNN at the run's size, else RNNConfig's defaults; synthetic features [T,D] and labels [T] on the device)."""
        s = self.s
        torch.manual_seed(0)
        features, labels = synthetic_features(s["rnn_frames"], s["rnn_input"])
        features, labels = features.to(self.device), labels.to(self.device)
        model = FrameRNN(RNNConfig(input_size=s["rnn_input"], hidden=s["rnn_hidden"])).to(self.device)
        model.set_standardization(features.mean(0), features.std(0))
        return model, features, labels
