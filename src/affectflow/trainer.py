"""Training loops for the CNN and the RNN: on-device data, seeded, checkpointed every epoch.

The CLI layer (affectflow.train) loads corpus, faces and features into arrays and
calls `fit_cnn` / `fit_rnn`. Everything the hot loop touches is one device tensor
(raw uint8 chips, features as float32); batches are gathered by index on the
device, augmentation runs there in batch, and CUDA runs under autocast with a
GradScaler. A CNN training set too large for that streams from the face files through
a bounded shuffle buffer (affectflow.stream); the two paths run the same training step
(make_cnn_batch_step). On CPU, with a seed, runs are deterministic and a resumed run ends
with the same weights as an uninterrupted one: the checkpoint holds model,
optimizer, scaler, history, best model and the python/numpy/torch/cuda RNG states,
all as tensors and plain values (affectflow.modelfile reads it with weights_only=True).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .contracts import CHECKPOINT_FILE, HISTORY_FILE, MODEL_FILE, RUN_FILE
from .dataset import shift_predictions
from .io import atomic_path
from .metrics import scores
from .modelfile import PipelineSettings, load_checkpoint, save_checkpoint, save_model_file
from .models import FaceCNN, FrameRNN, config_dict, weights_sha256
from .seeding import restore_rng_states, rng_states
from .tensors import chips_to_inputs, cnn_forward, edge_pad, rnn_window_predictions

HISTORY_METRICS = ("rmse", "cc", "ccc")
# Settings a resumed run must share with its checkpoint (the epoch count may grow, the device may change).
RESUME_MUST_MATCH = (
    "variant",
    "seed",
    "lr",
    "batch_size",
    "frame_stride",
    "label_shift",
    "selection",
    "dimension",
    "window",
    "window_stride",
    "loss",
    "feature_norm",
    "clip_norm",
    "train_subjects",
    "normalization",
    "data_path",  # in memory or streamed, and the stream's buffer: another path is another run
    "stream_chunk_rows",
    "stream_buffer_chunks",
)


@dataclass
class EvalSet:
    """Recordings scored each epoch: inputs for every frame (filled), gold at shift 0."""

    name: str  # "dev" or "val"
    inputs: list  # on the device (torch.Tensor), or read chunk by chunk (affectflow.stream.ChunkedRecording)
    times: list[np.ndarray]
    gold: list[np.ndarray]


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    clip_norm: float | None = None
    label_shift: float = 0.0
    selection: str = "dev"  # which EvalSet picks the best epoch
    max_minutes: float | None = None
    stop_after_epochs: int | None = None  # debug: simulate a kill after this many epochs
    loss: str = "mse"
    progress: bool = True
    extra: dict = field(default_factory=dict)


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


class Run:
    """One training run's folder: history.tsv, checkpoint.pt, the model file, run.json.

    `run_info` is the run's settings (run.json: named fields built by affectflow.train);
    `pipeline` what inference needs, completed with the weights' SHA-256 when the model is saved;
    `embedded_cnn` the (config, state dict) of the CNN an RNN reads.
    """

    def __init__(
        self,
        out: Path,
        kind: str,
        model: nn.Module,
        optimizer,
        scaler,
        settings: TrainSettings,
        eval_sets: list[EvalSet],
        run_info: dict,
        resume: bool,
        pipeline: PipelineSettings,
        embedded_cnn: tuple[dict, dict] | None = None,
    ) -> None:
        self.out, self.kind, self.model, self.optimizer, self.scaler = Path(out), kind, model, optimizer, scaler
        self.settings, self.eval_sets, self.run_info = settings, eval_sets, run_info
        self.pipeline, self.embedded_cnn = pipeline, embedded_cnn
        self.out.mkdir(parents=True, exist_ok=True)
        self.history: list[dict] = []
        self.epoch = 0
        self.best = {"score": -math.inf, "epoch": 0, "state": None}
        self.elapsed = 0.0
        checkpoint = self.out / CHECKPOINT_FILE
        if resume and checkpoint.is_file():
            self._load(checkpoint)

    @property
    def columns(self) -> list[str]:
        cols = ["epoch", "train_loss"]
        for s in self.eval_sets:
            cols += [f"{s.name}_{m}" for m in HISTORY_METRICS]
        return cols + ["seconds"]

    def _load(self, path: Path) -> None:
        from .errors import fail

        state = load_checkpoint(path)
        if state["architecture"] != config_dict(self.model.config) or state["kind"] != self.kind:
            raise fail(path, "checkpoint was written with different model settings; remove it or drop --resume")
        changed = sorted(k for k in RESUME_MUST_MATCH if state.get("run_info", {}).get(k) != self.run_info.get(k))
        if changed:
            raise fail(path, f"checkpoint was written with different {', '.join(changed)}; remove it or drop --resume")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.history, self.epoch, self.best, self.elapsed = (
            state["history"],
            state["epoch"],
            state["best"],
            state.get("elapsed", 0.0),
        )
        restore_rng_states(state["rng"])

    def save_epoch(self) -> None:
        state = {
            "kind": self.kind,
            "architecture": config_dict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history,
            "epoch": self.epoch,
            "best": self.best,
            "elapsed": self.elapsed,
            "run_info": {k: self.run_info.get(k) for k in RESUME_MUST_MATCH},
            "rng": rng_states(),
        }
        save_checkpoint(self.out / CHECKPOINT_FILE, state)
        self._write_history()

    def _write_history(self) -> None:
        with atomic_path(self.out / HISTORY_FILE) as tmp:
            with open(tmp, "w") as fh:
                fh.write("\t".join(self.columns) + "\n")
                for row in self.history:
                    fh.write("\t".join(_fmt(row[c]) for c in self.columns) + "\n")

    def record(self, train_loss: float, evaluations: dict[str, dict], seconds: float) -> None:
        row = {"epoch": self.epoch, "train_loss": train_loss, "seconds": seconds}
        for name, sc in evaluations.items():
            for m in HISTORY_METRICS:
                row[f"{name}_{m}"] = sc[m]
        self.history.append(row)
        selected = evaluations.get(self.settings.selection, {}).get("ccc", math.nan)
        # Model choice by CCC (the paper); with no selection set the last epoch is kept.
        if (
            not self.eval_sets
            or (not math.isnan(selected) and selected > self.best["score"])
            or self.best["state"] is None
        ):
            self.best = {
                "score": -math.inf if math.isnan(selected) else selected,
                "epoch": self.epoch,
                "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            }

    def finish(self, stopped: str | None) -> None:
        self.model.load_state_dict(self.best["state"])
        info = dict(self.run_info)
        info.update(
            {
                "kind": self.kind,
                "architecture": config_dict(self.model.config),
                "epochs_run": self.epoch,
                "best_epoch": self.best["epoch"],
                "best_selection_ccc": None if math.isinf(self.best["score"]) else self.best["score"],
                "stopped": stopped,
                "train_seconds": round(self.elapsed, 3),
            }
        )
        losses = [row["train_loss"] for row in self.history if math.isfinite(row["train_loss"])]
        variance = info.get("train_label_variance")
        if losses and variance:
            # a model that learned nothing but the mean stays at 1.0: the collapse check of the tables
            info["lowest_train_loss"] = min(losses)
            info["train_loss_to_label_variance"] = min(losses) / variance
        info["warnings"] = self.collapse_warnings(variance)
        for warning in info["warnings"]:
            print(f"affectflow train-{self.kind}: warning: {warning}", file=sys.stderr)
        settings = replace(self.pipeline, weights_sha256=weights_sha256(self.model))
        save_model_file(
            self.out / MODEL_FILE,
            self.kind,
            config_dict(self.model.config),
            self.model.state_dict(),
            settings,
            extra=json.loads(json.dumps(info, default=_json_default)),
            cnn=self.embedded_cnn,
        )
        with atomic_path(self.out / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=_json_default) + "\n")

    def collapse_warnings(self, variance: float | None) -> list[str]:
        """What says the saved model is no result: a training loss that ended at or above the labels'
        variance (the mean predicts as well), or a constant output on the selection set (CC undefined)."""
        warnings = []
        if self.history and variance:
            last = self.history[-1]["train_loss"]
            if math.isfinite(last) and last >= variance:
                warnings.append(
                    f"training ended at loss {last:.4g}, {last / variance:.2f}x the training labels' variance "
                    f"{variance:.4g}: the model does no better than the mean (lower --lr, or --clip-norm)"
                )
        selection = self.settings.selection
        best = next((row for row in self.history if row["epoch"] == self.best["epoch"]), None)
        if best is not None and f"{selection}_cc" in best and not math.isfinite(best[f"{selection}_cc"]):
            warnings.append(
                f"the selected model (epoch {self.best['epoch']}) gives a constant output on the {selection} set "
                "(its correlation is undefined)"
            )
        return warnings


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (Path, torch.device)):
        return str(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def _optimizer(model: nn.Module, s: TrainSettings):
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
            from .errors import AffectflowError

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


# ----------------------------------------------------------------------------- CNN


def cnn_predictor(model: FaceCNN, normalization: str, batch_size: int = 512) -> Callable[[object], np.ndarray]:
    """Chips -> the CNN's predictions, for the per-epoch scoring (the same forward pass as extraction).

    The chips are a tensor or array of a whole recording, or an affectflow.stream.ChunkedRecording read
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
    return _optimizer(model, settings), scaler


def streamed_batches(stream, device: torch.device) -> Callable[[], Iterator[tuple]]:
    """An epoch's batches from an affectflow.stream.TrainingStream, moved to the device. The epoch's
    order comes from a seed drawn from torch's global (seeded, checkpointed) generator."""

    def epoch() -> Iterator[tuple]:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        for x, y in stream.epoch(seed):
            yield torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    return epoch


def fit_cnn(
    model: FaceCNN,
    train_x: torch.Tensor | None,
    train_y: torch.Tensor | None,
    eval_sets: list[EvalSet],
    settings: TrainSettings,
    out: Path,
    augment: bool,
    normalization: str,
    resume: bool,
    run_info: dict,
    device: torch.device,
    pipeline: PipelineSettings,
    stream=None,
) -> Path:
    """Train the CNN on device tensors train_x [N,S,S] (raw uint8 chips), train_y [N] float32 (the
    in-memory path), or, with `stream` (an affectflow.stream.TrainingStream; train_x, train_y None), on
    batches streamed from the face files. Both paths run the same step (make_cnn_batch_step)."""
    model.to(device)
    optimizer, scaler = cnn_optimizer(model, settings, device)
    run = Run(out, "cnn", model, optimizer, scaler, settings, eval_sets, run_info, resume, pipeline)
    step = make_cnn_batch_step(
        model,
        optimizer,
        scaler,
        augment,
        device,
        normalization=normalization,
        clip_norm=settings.clip_norm,
    )
    if stream is None:
        indices = index_batches(len(train_x), settings.batch_size, device)

        def batches() -> Iterator[tuple]:
            for (index,) in indices():
                yield train_x[index], train_y[index]
    else:
        batches = streamed_batches(stream, device)
    predictor = cnn_predictor(model, normalization)
    return _loop(run, device, batches, step, {e.name: predictor for e in eval_sets}, "train-cnn")


# ----------------------------------------------------------------------------- RNN


def fit_rnn(
    model: FrameRNN,
    features: list[torch.Tensor],
    labels: list[torch.Tensor],
    eval_sets: list[EvalSet],
    settings: TrainSettings,
    out: Path,
    window: int,
    window_stride: int,
    resume: bool,
    run_info: dict,
    device: torch.device,
    pipeline: PipelineSettings,
    embedded_cnn: tuple[dict, dict],
    eval_stride: int = 1,
) -> Path:
    """Train the RNN on windows [t-W+1, t] of each training recording (a label at every step), one
    window ending at every `window_stride`-th frame, the first frames' windows edge-padded."""
    from .dataset import window_ends

    model.to(device)
    # Each recording is edge-padded in front (edge_pad; the padded steps are unlabelled) as at test
    # time, so the windows of a recording's first frames train too.
    padded_features, padded_labels, starts, offset = [], [], [], 0
    for feats, labs in zip(features, labels):
        padded_features.append(edge_pad(feats, window))
        padded_labels.append(torch.cat([torch.full((window - 1,), float("nan")), labs]))
        ends = torch.from_numpy(window_ends(len(feats), window_stride))
        if len(ends):
            # a window [t-W+1, t] starts at padded index t; windows without a labelled step carry no gradient
            has_label = torch.isfinite(padded_labels[-1]).float().unfold(0, window, 1)[ends].sum(1) > 0
            starts.append(ends[has_label] + offset)
        offset += len(feats) + window - 1
    all_features = torch.cat(padded_features).to(device)
    all_labels = torch.cat(padded_labels).to(device)
    if not starts or sum(len(s) for s in starts) == 0:
        from .errors import AffectflowError

        raise AffectflowError("no training window with a labelled frame")
    starts_t = torch.cat(starts).to(device)
    steps = torch.arange(window, device=device)
    optimizer = _optimizer(model, settings)
    run = Run(out, "rnn", model, optimizer, None, settings, eval_sets, run_info, resume, pipeline, embedded_cnn)

    def step(batch: torch.Tensor) -> torch.Tensor:
        index = starts_t[batch][:, None] + steps[None, :]
        loss = masked_loss(model(all_features[index]), all_labels[index], settings.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip_norm:
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
        optimizer.step()
        return loss

    def predictor(feats: torch.Tensor) -> np.ndarray:
        # eval sets hold every eval_stride-th frame's time and gold (see train-rnn --eval-stride)
        return rnn_window_predictions(model, feats, window, stride=eval_stride)

    batches = index_batches(len(starts_t), settings.batch_size, device)
    return _loop(run, device, batches, step, {e.name: predictor for e in eval_sets}, "train-rnn")
