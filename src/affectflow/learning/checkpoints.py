"""One training run's folder: history.tsv, checkpoint.pt (every epoch, for --resume), the model file
and run.json; what a resumed run must share with its checkpoint (RESUME_MUST_MATCH).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..contracts import CHECKPOINT_FILE, HISTORY_FILE, MODEL_FILE, RUN_FILE
from ..io import atomic_path
from ..modelfile import load_checkpoint, save_checkpoint, save_model_file
from ..nets.networks import config_dict, weights_sha256
from .seeding import restore_rng_states, rng_states
from .settings import EvalSet, TrainSettings

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


class Run:
    """One training run's folder: history.tsv, checkpoint.pt, the model file, run.json.

    `setup` (affectflow.learning.loop.RunSetup) holds the folder, whether to resume, the run's settings
    (run.json: named fields built by affectflow.learning.data.run_info), the device and what inference
    needs (completed with the weights' SHA-256 when the model is saved); `embedded_cnn` the (config,
    state dict) of the CNN an RNN reads.
    """

    def __init__(
        self,
        setup,
        kind: str,
        model: nn.Module,
        optimizer,
        scaler,
        settings: TrainSettings,
        eval_sets: list[EvalSet],
        embedded_cnn: tuple[dict, dict] | None = None,
    ) -> None:
        self.out, self.kind, self.model, self.optimizer, self.scaler = Path(setup.out), kind, model, optimizer, scaler
        self.settings, self.eval_sets, self.run_info = settings, eval_sets, setup.info
        self.pipeline, self.embedded_cnn = setup.pipeline, embedded_cnn
        if self.out.exists() and not self.out.is_dir():
            from ..errors import fail

            raise fail(self.out, "is a file, not a run folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.history: list[dict] = []
        self.epoch = 0
        self.best = {"score": -math.inf, "epoch": 0, "state": None}
        self.elapsed = 0.0
        checkpoint = self.out / CHECKPOINT_FILE
        if setup.resume and checkpoint.is_file():
            self._load(checkpoint)

    @property
    def columns(self) -> list[str]:
        cols = ["epoch", "train_loss"]
        for s in self.eval_sets:
            cols += [f"{s.name}_{m}" for m in HISTORY_METRICS]
        return cols + ["seconds"]

    def _load(self, path: Path) -> None:
        from ..errors import fail

        state = load_checkpoint(path)
        problem = checkpoint_problem(state)
        if problem:
            raise fail(path, f"not a usable checkpoint: {problem}; remove it or drop --resume")
        if state["architecture"] != config_dict(self.model.config) or state["kind"] != self.kind:
            raise fail(path, "checkpoint was written with different model settings; remove it or drop --resume")
        changed = sorted(k for k in RESUME_MUST_MATCH if state.get("run_info", {}).get(k) != self.run_info.get(k))
        if changed:
            raise fail(path, f"checkpoint was written with different {', '.join(changed)}; remove it or drop --resume")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise fail(
                path, f"the checkpoint's weights do not fit the model ({first}); remove it or drop --resume"
            ) from None
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


CHECKPOINT_TYPES = {
    "kind": str,
    "architecture": dict,
    "model": dict,
    "optimizer": dict,
    "history": list,
    "epoch": int,
    "best": dict,
    "run_info": dict,
    "rng": dict,
}
MAX_EPOCH = 1_000_000


def checkpoint_problem(state) -> str | None:
    """What makes a loaded checkpoint unusable for --resume (a field missing or of another type, an epoch
    out of range, history rows that are not records), or None. The weights' shapes are checked when they
    are loaded into the model."""
    if not isinstance(state, dict):
        return "it is not a mapping"
    for key, kind in CHECKPOINT_TYPES.items():
        if not isinstance(state.get(key), kind) or (kind is int and isinstance(state.get(key), bool)):
            return f"{key} is {type(state.get(key)).__name__}, not {kind.__name__}"
    if not 0 <= state["epoch"] <= MAX_EPOCH:
        return f"epoch {state['epoch']} is outside 0..{MAX_EPOCH}"
    if len(state["history"]) != state["epoch"] or not all(isinstance(row, dict) for row in state["history"]):
        return f"history holds {len(state['history'])} rows of records for {state['epoch']} epochs"
    return None
