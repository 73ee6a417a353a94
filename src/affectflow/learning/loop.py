"""Training loops for the CNN and the RNN: on-device data, seeded, checkpointed every epoch.

The CLI layer (affectflow.learning.commands) loads corpus, faces and features into arrays and
calls `fit_cnn` / `fit_rnn`. Everything the hot loop touches is one device tensor
(raw uint8 chips, features as float32); batches are gathered by index on the
device, augmentation runs there in batch, and CUDA runs under autocast with a
GradScaler. A CNN training set too large for that streams from the face files through
a bounded shuffle buffer (affectflow.learning.stream); the two paths run the same training step
(make_cnn_batch_step). On CPU, with a seed, runs are deterministic and a resumed run ends
with the same weights as an uninterrupted one: the checkpoint holds model,
optimizer, scaler, history, best model and the python/numpy/torch/cuda RNG states,
all as tensors and plain values (affectflow.modelfile reads it with weights_only=True).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.labels import shift_predictions
from ..metrics import scores
from ..modelfile import PipelineSettings
from ..nets.networks import FaceCNN, FrameRNN
from ..nets.tensors import chips_to_inputs, cnn_forward, edge_pad, rnn_window_predictions
from .checkpoints import Run
from .settings import EvalSet, TrainSettings


def masked_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """MSE (or 1 - CCC) over the finite targets of the batch.

    Written with weights instead of boolean indexing so that it never synchronizes the device.
    """
    weight = torch.isfinite(target).float()
    p = pred.float()
    t = torch.where(weight > 0, target.float(), torch.zeros_like(p))
    count = weight.sum().clamp_min(1.0)
    if kind == "mse":
        return (weight * (p - t) ** 2).sum() / count
    mp, mt = (weight * p).sum() / count, (weight * t).sum() / count
    vp = (weight * (p - mp) ** 2).sum() / count
    vt = (weight * (t - mt) ** 2).sum() / count
    cov = (weight * (p - mp) * (t - mt)).sum() / count
    return 1.0 - 2.0 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)


def score_set(predict: Callable[[torch.Tensor], np.ndarray], eval_set: EvalSet, shift: float) -> dict:
    preds, golds = [], []
    for inputs, times, gold in zip(eval_set.inputs, eval_set.times, eval_set.gold):
        preds.append(shift_predictions(times, predict(inputs), shift))
        golds.append(gold)
    return scores(np.concatenate(preds), np.concatenate(golds))


def sgd_optimizer(model: nn.Module, s: TrainSettings):
    return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)


def index_batches(n_items: int, batch_size: int, device: torch.device) -> Callable[[], Iterator[tuple]]:
    """An epoch's batches of indices into on-device data: a fresh random permutation each epoch."""

    def epoch() -> Iterator[tuple]:
        order = torch.randperm(n_items, device=device)
        for begin in range(0, n_items, batch_size):
            yield (order[begin : begin + batch_size],)

    return epoch


def _loop(
    run: Run,
    device: torch.device,
    epoch_batches: Callable[[], Iterable[tuple]],
    step: Callable[..., torch.Tensor],
    predictors: dict[str, Callable],
    desc: str,
) -> Path:
    """The epoch loop shared by both networks and both data paths. `epoch_batches()` gives an epoch's
    batches (tuples whose first element has the batch's length); `step(*batch)` returns the batch loss
    (on device)."""
    from tqdm import tqdm

    s = run.settings
    stopped = None
    bar = tqdm(total=s.epochs, initial=run.epoch, desc=desc, unit="epoch", leave=False, disable=not s.progress)
    while run.epoch < s.epochs:
        started = time.perf_counter()
        run.model.train()
        total = torch.zeros((), device=device)
        n_items = 0
        for batch in epoch_batches():
            total += step(*batch).detach() * len(batch[0])
            n_items += len(batch[0])
        train_loss = float(total) / max(1, n_items)
        run.model.eval()
        with torch.no_grad():
            evaluations = {e.name: score_set(predictors[e.name], e, s.label_shift) for e in run.eval_sets}
        run.epoch += 1
        seconds = time.perf_counter() - started
        run.elapsed += seconds
        run.record(train_loss, evaluations, seconds)
        run.save_epoch()
        postfix = {"loss": f"{train_loss:.4f}"}
        postfix.update({f"{k}_ccc": f"{v['ccc']:.3f}" for k, v in evaluations.items()})
        bar.set_postfix(postfix)
        bar.update(1)
        if not math.isfinite(train_loss):
            bar.close()
            from ..errors import AffectflowError

            # A diverged model is not a result: no model.pt, no row in any table.
            raise AffectflowError(
                f"{desc}: training diverged in epoch {run.epoch} (training loss {train_loss}) at lr {s.lr}, "
                f"batch {s.batch_size}; lower --lr or set --clip-norm (history so far: {run.out / 'history.tsv'})"
            )
        if s.stop_after_epochs is not None and run.epoch >= s.stop_after_epochs and run.epoch < s.epochs:
            bar.close()
            raise SystemExit(f"stopped after {run.epoch} epochs (--stop-after-epochs); resume with --resume")
        if s.max_minutes is not None and run.elapsed > 60.0 * s.max_minutes and run.epoch < s.epochs:
            stopped = f"time budget of {s.max_minutes} min reached after {run.epoch} epochs"
            break
    bar.close()
    run.finish(stopped)
    return run.out


def cnn_predictor(model: FaceCNN, normalization: str, batch_size: int = 512) -> Callable[[object], np.ndarray]:
    """Chips -> the CNN's predictions, for the per-epoch scoring (the same forward pass as extraction).

    The chips are a tensor or array of a whole recording, or an affectflow.learning.stream.ChunkedRecording read
    chunk by chunk (the CNN scores frames independently: the same predictions)."""
    from .stream import ChunkedRecording

    def predict(chips) -> np.ndarray:
        if isinstance(chips, ChunkedRecording):
            parts = [cnn_forward(model, c, normalization, batch_size, features=False)[1] for c in chips.chunks()]
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return cnn_forward(model, chips, normalization, batch_size, features=False)[1]

    return predict


def make_cnn_batch_step(
    model: FaceCNN,
    optimizer,
    scaler,
    augment: bool,
    device: torch.device,
    *,
    normalization: str = "gcn",
    amp: bool | None = None,
    channels_last: bool = True,
    clip_norm: float | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """THE CNN training step, `step(chips, labels)`: raw uint8 chips [B,S,S] and labels [B] on the device
    -> augment, normalize and one SGD step there; returns the batch loss. Both data paths (in memory,
    streamed) and the benchmarks run it. `amp=None` means AMP on CUDA only.
    """
    # channels-last convolutions: ~1.7x faster training of the demo's CNN on CPU (oneDNN), AMP-friendly on CUDA
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)
    use_amp = device.type == "cuda" if amp is None else bool(amp)

    def step(chips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = chips_to_inputs(chips, normalization, augment).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, enabled=use_amp):
            loss = masked_loss(model(x), labels, "mse")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_norm:
                scaler.unscale_(optimizer)  # clip the true gradient, not the loss-scaled one
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            optimizer.step()
        return loss

    return step


def make_cnn_step(
    model: FaceCNN,
    optimizer,
    scaler,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    augment: bool,
    device: torch.device,
    **options,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The in-memory path's step on the batch `train_x[indices]`: gathered on the device, then
    make_cnn_batch_step's step. `train_x` holds the raw uint8 chips [N,S,S] on the device."""
    step = make_cnn_batch_step(model, optimizer, scaler, augment, device, **options)
    return lambda batch: step(train_x[batch], train_y[batch])


def cnn_optimizer(model: FaceCNN, settings: TrainSettings, device: torch.device):
    """(SGD optimizer, GradScaler on CUDA else None)."""
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    return sgd_optimizer(model, settings), scaler


def streamed_batches(stream, device: torch.device) -> Callable[[], Iterator[tuple]]:
    """An epoch's batches from an affectflow.learning.stream.TrainingStream, moved to the device. The epoch's
    order comes from a seed drawn from torch's global (seeded, checkpointed) generator."""

    def epoch() -> Iterator[tuple]:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        for x, y in stream.epoch(seed):
            yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    return epoch


@dataclass
class RunSetup:
    """Where and as what a run is recorded (affectflow.learning.checkpoints.Run): its folder, whether it
    resumes, run.json's entries, the device, and the model file's inference settings."""

    out: Path
    resume: bool
    info: dict
    device: torch.device
    pipeline: PipelineSettings


@dataclass
class CNNBatches:
    """The CNN's training data and how batches are prepared from it: raw uint8 chips [N,S,S] and labels [N]
    on the device (in memory), or `stream` (an affectflow.learning.stream.TrainingStream; chips None, labels
    on the host); augmentation and normalization run on the device, batch by batch."""

    chips: torch.Tensor | None
    labels: torch.Tensor
    eval_sets: list[EvalSet]
    augment: bool
    normalization: str
    stream: object | None = None


@dataclass
class RNNWindows:
    """The RNN's training recordings (features [T,D] and labels [T] each), scored every eval_stride-th
    frame; windows of `window` frames end at every `window_stride`-th frame. `embedded_cnn`: the (config,
    state dict) of the CNN whose features these are (the RNN's model file embeds it)."""

    features: list[torch.Tensor]
    labels: list[torch.Tensor]
    eval_sets: list[EvalSet]
    window: int
    window_stride: int
    eval_stride: int
    embedded_cnn: tuple[dict, dict]


def fit_cnn(model: FaceCNN, data: CNNBatches, settings: TrainSettings, setup: RunSetup) -> Path:
    """Train the CNN on `data` (in memory, or streamed from the face files): both paths run the same step
    (make_cnn_batch_step)."""
    device = setup.device
    model.to(device)
    optimizer, scaler = cnn_optimizer(model, settings, device)
    run = Run(setup, "cnn", model, optimizer, scaler, settings, data.eval_sets)
    step = make_cnn_batch_step(
        model, optimizer, scaler, data.augment, device, normalization=data.normalization, clip_norm=settings.clip_norm
    )
    if data.stream is None:
        indices = index_batches(len(data.chips), settings.batch_size, device)

        def batches() -> Iterator[tuple]:
            for (index,) in indices():
                yield data.chips[index], data.labels[index]
    else:
        batches = streamed_batches(data.stream, device)
    predictor = cnn_predictor(model, data.normalization)
    return _loop(run, device, batches, step, {e.name: predictor for e in data.eval_sets}, "train-cnn")


def make_rnn_step(
    model: FrameRNN, optimizer, features: torch.Tensor, labels: torch.Tensor, window: int, settings: TrainSettings
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The RNN's training step: `step(starts)` gathers the windows [start, start + window) of the
    (padded) device tensors `features` [N,D] and `labels` [N], takes the loss at every step
    (masked_loss), clips the gradient norm (settings.clip_norm, if any) and steps the optimizer."""
    steps = torch.arange(window, device=features.device)

    def step(starts: torch.Tensor) -> torch.Tensor:
        index = starts[:, None] + steps[None, :]
        loss = masked_loss(model(features[index]), labels[index], settings.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip_norm:
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
        optimizer.step()
        return loss

    return step


def fit_rnn(model: FrameRNN, data: RNNWindows, settings: TrainSettings, setup: RunSetup) -> Path:
    """Train the RNN on windows [t-W+1, t] of each training recording (a label at every step), one
    window ending at every `window_stride`-th frame, the first frames' windows edge-padded."""
    from ..nets.rnn_inputs import window_ends

    device, window = setup.device, data.window
    model.to(device)
    # Each recording is edge-padded in front (edge_pad; the padded steps are unlabelled) as at test
    # time, so the windows of a recording's first frames train too.
    padded_features, padded_labels, starts, offset = [], [], [], 0
    for feats, labs in zip(data.features, data.labels):
        padded_features.append(edge_pad(feats, window))
        padded_labels.append(torch.cat([torch.full((window - 1,), float("nan")), labs]))
        ends = torch.from_numpy(window_ends(len(feats), data.window_stride))
        if len(ends):
            # a window [t-W+1, t] starts at padded index t; windows without a labelled step carry no gradient
            has_label = torch.isfinite(padded_labels[-1]).float().unfold(0, window, 1)[ends].sum(1) > 0
            starts.append(ends[has_label] + offset)
        offset += len(feats) + window - 1
    all_features = torch.cat(padded_features).to(device)
    all_labels = torch.cat(padded_labels).to(device)
    if not starts or sum(len(s) for s in starts) == 0:
        from ..errors import AffectflowError

        raise AffectflowError("no training window with a labelled frame")
    starts_t = torch.cat(starts).to(device)
    optimizer = sgd_optimizer(model, settings)
    run = Run(setup, "rnn", model, optimizer, None, settings, data.eval_sets, data.embedded_cnn)
    window_step = make_rnn_step(model, optimizer, all_features, all_labels, window, settings)

    def step(batch: torch.Tensor) -> torch.Tensor:
        return window_step(starts_t[batch])

    def predictor(feats: torch.Tensor) -> np.ndarray:
        # eval sets hold every eval_stride-th frame's time and gold (see train-rnn --eval-stride)
        return rnn_window_predictions(model, feats, window, stride=data.eval_stride)

    batches = index_batches(len(starts_t), settings.batch_size, device)
    return _loop(run, device, batches, step, {e.name: predictor for e in data.eval_sets}, "train-rnn")
