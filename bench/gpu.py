"""GPU check: the paper-size networks' training and inference throughput on one CUDA device.

Written to run once on a bare CUDA node (Python with torch, numpy; nothing from this
repository installed, no network):

    PYTHONPATH=src python3 bench/gpu.py --out gpu.json

Everything runs on synthetic data made in memory (uint8 96x96 chips with some
structure, labels in [-1, 1]; 300-d frame features); only torch, numpy and
affectflow.{models,trainer,augment,normalize,normalize_torch} are imported for the
figures: no C++ extension, no Snakemake, no tqdm, no scipy. Each section is
time-boxed (fixed warm-up and timed step counts, each timed loop also capped in
seconds, torch.cuda.synchronize around every timing); the whole run stays under
--budget-s (default 450 s, i.e. 7.5 minutes on an H100).

Sections:
  cnn_train       the paper's CNN (CNNConfig() defaults: 96x96, 64/128/256, FC 300, batch 128),
                  training images/s with the data on the device, variants plain and AD
                  (augmentation + dropout 0.5), AMP on/off x channels-last on/off; ratios.
  input_pipeline  gather + scale + augment + normalize alone vs the full training step
                  (same batches): the input pipeline's share of the step.
  paper_recipe    does the paper's recipe train at paper size? The paper CNN with the authors' init
                  (3 draws of k), local-mean, SGD momentum 0.9, batch 128, for lr 0.01 (the paper's),
                  0.005, 0.002, without and with gradient-norm clipping at 1.0: training loss over
                  the first and last steps of 300, relative to the labels' variance, and whether
                  it stayed finite (at lr 0.01 the loss was NaN within 3 steps on CPU and GPU).
  extract         affectflow.inference.extract_features frames/s (chips from host numpy and
                  from a device tensor).
  rnn_train       FrameRNN (h=100, W=100, batch 128, 300-d inputs, tanh) training windows/s.
  rnn_infer       affectflow.trainer.rnn_window_predictions windows/s.
  workflow        `snakemake --cores 4 --configfile config/tiny.yaml --config device=cuda` in a
                  temporary directory, wall time; only where snakemake and the extension
                  affectflow._native are importable (checked in a subprocess), else skipped.

Without CUDA it exits with status 2 ("no CUDA device: ...") and writes nothing, unless
--allow-cpu: then every section runs on the CPU with tiny step counts (figures labelled
CPU; at paper size the AMP rows are skipped there: bfloat16 autocast took ~5 min a step
on a 2-core machine); --quick also shrinks the networks and data (the test suite uses
--allow-cpu --quick --skip-workflow). Exit status 1 when a section failed (the JSON
is still written, with the error).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "affectflow-bench-gpu/1"
VARIANTS = {"plain": (False, 0.0), "AD": (True, 0.5)}  # (augment, dropout), as affectflow.train.VARIANTS
# torch's own dependencies, which it imports lazily (sympy for symbolic shapes, triton on CUDA, ...).
TORCH_DEPENDENCIES = {
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "filelock",
    "fsspec",
    "triton",
    "typing_extensions",
    "cython_runtime",
    "setuptools",
    "pkg_resources",
}
SECTIONS = ("paper_recipe", "cnn_train", "input_pipeline", "extract", "rnn_train", "rnn_infer", "workflow")
# Modules the figures must not load beyond what torch itself imports (a bare GPU node may lack them,
# or, for the extension and Snakemake, the figures must not depend on them).
FORBIDDEN_MODULES = ("affectflow._native", "snakemake", "tqdm", "scipy", "h5py", "cv2", "yaml", "pandas", "matplotlib")


# ----------------------------------------------------------------------------- sizes


def sizes(args, cuda: bool) -> dict:
    """Problem sizes and step counts: the paper's on CUDA; tiny counts on CPU; --quick shrinks everything."""
    s = dict(
        chip_size=96,
        channels=[64, 128, 256],
        fc=300,
        batch_size=128,
        frames=20000,
        extract_frames=15000,
        extract_batch=512,
        normalization="local-mean",
        throughput_lr=0.002,
        recipe_steps=300,
        recipe_lrs=[0.01, 0.005, 0.002],
        recipe_clips=[0.0, 1.0],
        recipe_seeds=[0, 1, 2],
        rnn_hidden=100,
        rnn_window=100,
        rnn_batch=128,
        rnn_frames=20000,
        rnn_infer_frames=15000,
        rnn_infer_batch=512,
        warmup=10,
        steps=100,
        pipeline_steps=50,
        max_loop_s=25.0,
    )
    if not cuda:
        s.update(
            frames=512,
            extract_frames=512,
            rnn_frames=2048,
            rnn_infer_frames=512,
            warmup=1,
            steps=2,
            pipeline_steps=2,
            max_loop_s=60.0,
            recipe_steps=3,
            recipe_lrs=[0.01],
            recipe_clips=[0.0],
            recipe_seeds=[0],
        )
    if args.quick:
        s.update(
            chip_size=32,
            channels=[4, 8, 16],
            fc=32,
            batch_size=16,
            frames=256,
            extract_frames=256,
            extract_batch=64,
            rnn_hidden=16,
            rnn_window=10,
            rnn_batch=16,
            rnn_frames=512,
            rnn_infer_frames=256,
            rnn_infer_batch=64,
            warmup=1,
            steps=3,
            pipeline_steps=3,
            recipe_steps=3,
        )
    if args.steps:
        s["steps"] = s["pipeline_steps"] = args.steps
    if args.warmup is not None:
        s["warmup"] = args.warmup
    s["rnn_input"] = s["fc"]
    return s


# ----------------------------------------------------------------------------- helpers


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_loop(fn, warmup: int, steps: int, device, max_s: float) -> tuple[int, float, object]:
    """Run fn(k) `warmup` times, then up to `steps` times (stopping early past max_s): (steps, seconds, last)."""
    out = None
    for k in range(warmup):
        out = fn(k)
    _sync(device)
    started = time.perf_counter()
    done = 0
    for k in range(steps):
        out = fn(warmup + k)
        done += 1
        if done % 10 == 0 and time.perf_counter() - started > max_s:
            break
    _sync(device)
    return done, time.perf_counter() - started, out


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


PEAKS: list[tuple[float, float]] = []  # (allocated, reserved) MiB peaks seen by peak_mib, for the overall peak


def peak_mib(device) -> float | None:
    """Peak allocated device memory (MiB) since the last reset_peak; None on CPU."""
    import torch

    if device.type == "cuda":
        allocated = torch.cuda.max_memory_allocated(device) / 2**20
        PEAKS.append((allocated, torch.cuda.max_memory_reserved(device) / 2**20))
        return round(allocated, 1)
    return None


def host_rss_mib() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    except Exception:  # noqa: BLE001 - not on every platform
        return None


def free_device(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:500]


# ----------------------------------------------------------------------------- data


def synthetic_chips(n: int, size: int, seed: int = 0):
    """(uint8 chips [n,size,size], float32 labels [n] in [-1,1]) with some face-like structure.

    32 templates (an ellipse 'face', dark eye/mouth blobs, a few random blobs, a gradient),
    each chip one template with random gain/offset and pixel noise; a chip's label is its
    template's value plus noise, so the data are learnable.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    k = 32
    axis = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")

    def blob(cy, cx, sy, sx):
        return torch.exp(-(((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))

    templates = []
    for _ in range(k):
        r = torch.rand(16, generator=g)
        face = ((xx / (0.6 + 0.2 * r[0])) ** 2 + (yy / (0.8 + 0.15 * r[1])) ** 2 < 1).float() * 0.5
        t = 0.25 + face + 0.2 * (xx * (r[2] - 0.5) + yy * (r[3] - 0.5))
        for cx in (-0.3, 0.3):  # eyes
            t = t - 0.35 * blob(-0.25 + 0.1 * r[4], cx, 0.08, 0.12)
        t = t - (0.2 + 0.3 * r[5]) * blob(0.4 + 0.1 * r[6], 0.0, 0.06 + 0.08 * r[7], 0.25)  # mouth
        for j in range(3):
            t = t + 0.2 * (r[8 + j] - 0.5) * blob(2 * r[11 + j] - 1, 2 * r[14 - j] - 1, 0.3, 0.3)
        templates.append(t)
    templates = torch.stack(templates)
    lo = templates.amin(dim=(1, 2), keepdim=True)
    templates = (templates - lo) / (templates.amax(dim=(1, 2), keepdim=True) - lo)
    template_labels = torch.rand(k, generator=g) * 2 - 1

    index = torch.randint(k, (n,), generator=g)
    chips = torch.empty(n, size, size, dtype=torch.uint8)
    for begin in range(0, n, 2048):
        idx = index[begin : begin + 2048]
        m = len(idx)
        gain = 0.6 + 0.4 * torch.rand(m, 1, 1, generator=g)
        offset = 0.2 * torch.rand(m, 1, 1, generator=g)
        noise = 0.04 * torch.randn(m, size, size, generator=g)
        x = (templates[idx] * gain + offset + noise).clamp(0, 1)
        chips[begin : begin + m] = (x * 255).round().to(torch.uint8)
    labels = (template_labels[index] + 0.1 * torch.randn(n, generator=g)).clamp(-1, 1)
    return chips, labels.float()


def synthetic_features(n: int, dim: int, seed: int = 1):
    """(float32 features [n,dim] >= 0, smooth over time like ReLU CNN features; labels [n] in [-1,1])."""
    import torch
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(1, dim, n + 8, generator=g)
    features = F.relu(F.avg_pool1d(raw, 9, stride=1) * 3.0)[0].T.contiguous()
    walk = torch.cumsum(0.05 * torch.randn(n, generator=g), 0)
    labels = torch.tanh(walk - walk.mean())
    return features.float(), labels.float()


# ----------------------------------------------------------------------------- sections


class Bench:
    def __init__(self, args, device, result: dict, started: float) -> None:
        import torch

        self.args, self.device = args, device
        self.cuda = device.type == "cuda"
        self.s = sizes(args, self.cuda)
        self.started = started  # the run's start, for --budget-s
        self.result = result  # filled in place: main writes what there is if the run dies
        result.update(
            {
                "command": " ".join(["bench/gpu.py"] + sys.argv[1:]),
                "settings": dict(self.s, quick=bool(args.quick)),
                "sections": {},
                "errors": {},
            }
        )
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

    def batches(self, batch_size: int, n: int, seed: int = 0):
        import torch

        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g).to(self.device)
        span = n - batch_size + 1

        def batch(k: int):
            start = (k * batch_size) % span
            return order[start : start + batch_size]

        return batch

    def run_section(self, name: str, fn) -> None:
        started = time.perf_counter()
        reset_peak(self.device)
        try:
            fn()
            peak_mib(self.device)
            self.result["sections"][name] = "ran"
        except Exception as error:  # noqa: BLE001 - one failed section must not lose the others
            self.result["sections"][name] = f"error: {_error_text(error)}"
            self.result["errors"][name] = traceback.format_exc()[-4000:]
            print(f"!! {name} failed: {_error_text(error)}", file=sys.stderr, flush=True)
        finally:
            free_device(self.device)
        print(f"   [{name}: {time.perf_counter() - started:.1f} s, total {self.elapsed():.0f} s]", flush=True)
        self.save_partial()

    def save_partial(self) -> None:
        """The figures so far, in case a later section hangs or the node is taken back."""
        write_json(self.args.out, dict(self.result, partial=True))

    # -- CNN training

    def _cnn_model(self, dropout: float):
        import torch

        from affectflow.models import CNNConfig, FaceCNN

        torch.manual_seed(0)
        s = self.s
        return (
            FaceCNN(CNNConfig(chip_size=s["chip_size"], channels=tuple(s["channels"]), fc=s["fc"], dropout=dropout))
            .to(self.device)
            .train()
        )

    def _cnn_step(self, variant: str, amp: bool | None, channels_last: bool):
        from affectflow.trainer import TrainSettings, cnn_optimizer, make_cnn_step

        augment, dropout = VARIANTS[variant]
        model = self._cnn_model(dropout)
        # The throughput rows train at throughput_lr: the paper's 0.01 diverges at this size (paper_recipe).
        optimizer, scaler = cnn_optimizer(
            model, TrainSettings(epochs=1, batch_size=self.s["batch_size"], lr=self.s["throughput_lr"]), self.device
        )
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
        )
        return model, step

    def paper_recipe(self) -> None:
        import math

        import torch

        from affectflow.models import CNNConfig, FaceCNN
        from affectflow.trainer import TrainSettings, cnn_optimizer, make_cnn_step

        s, rows = self.s, []
        self.result["paper_recipe"] = rows
        variance = float(self.train_y.float().var(unbiased=False))
        batch = self.batches(s["batch_size"], len(self.train_x), seed=1)
        for lr in s["recipe_lrs"]:
            for clip in s["recipe_clips"]:
                for seed in s["recipe_seeds"]:
                    torch.manual_seed(seed)
                    model = (
                        FaceCNN(
                            CNNConfig(chip_size=s["chip_size"], channels=tuple(s["channels"]), fc=s["fc"], init="paper")
                        )
                        .to(self.device)
                        .train()
                    )
                    optimizer, scaler = cnn_optimizer(
                        model, TrainSettings(epochs=1, batch_size=s["batch_size"], lr=lr), self.device
                    )
                    step = make_cnn_step(
                        model,
                        optimizer,
                        scaler,
                        self.train_x,
                        self.train_y,
                        False,
                        self.device,
                        normalization=s["normalization"],
                        clip_norm=clip or None,
                    )
                    losses = torch.stack([step(batch(k)).detach().float() for k in range(s["recipe_steps"])]).cpu()
                    head, tail = losses[:10], losses[-20:]
                    finite = bool(torch.isfinite(losses).all())
                    first_bad = None if finite else int((~torch.isfinite(losses)).nonzero()[0, 0])
                    row = {
                        "lr": lr,
                        "clip_norm": clip,
                        "seed": seed,
                        "init_k": round(model.init_k, 3),
                        "finite": finite,
                        "first_nonfinite_step": first_bad,
                        "first_loss_ratio": float(head.mean()) / variance,
                        "last_loss_ratio": float(tail.mean()) / variance if finite else math.nan,
                    }
                    rows.append(row)
                    print(
                        f"   lr {lr:<6g} clip {clip:<4g} k {row['init_k']:.2f}  loss/var first "
                        f"{row['first_loss_ratio']:10.4g}  last {row['last_loss_ratio']:8.4g}"
                        + ("" if finite else f"  NON-FINITE from step {first_bad}"),
                        flush=True,
                    )
                    del model, step, optimizer

    def cnn_train(self) -> None:
        import torch

        s, rows = self.s, []
        self.result["cnn_train"] = rows
        batch = self.batches(s["batch_size"], len(self.train_x))
        for variant in VARIANTS:
            for amp in (False, True):
                for channels_last in (False, True):
                    row = {"variant": variant, "amp": amp, "channels_last": channels_last}
                    rows.append(row)
                    if amp and not self.cuda and not self.args.quick:
                        # bfloat16 autocast on a CPU without bf16 units: one paper-size step took ~5 minutes
                        row["skipped"] = "AMP on CPU (bfloat16 autocast) at paper size is too slow; --quick runs it"
                        self._print_cnn_row(row)
                        continue
                    try:
                        reset_peak(self.device)
                        model, step = self._cnn_step(variant, amp, channels_last)
                        done, seconds, loss = timed_loop(
                            lambda k: step(batch(k)), s["warmup"], s["steps"], self.device, self.loop_cap()
                        )
                        row.update(
                            images_per_s=round(done * s["batch_size"] / seconds, 1),
                            ms_per_step=round(1e3 * seconds / done, 3),
                            steps=done,
                            final_loss=float(loss.detach()),
                            peak_memory_mib=peak_mib(self.device),
                        )
                        del model, step, loss
                    except Exception as error:  # noqa: BLE001
                        row["error"] = _error_text(error)
                        print(
                            f"!! cnn_train {variant} amp={amp} channels_last={channels_last}: {row['error']}",
                            file=sys.stderr,
                            flush=True,
                        )
                    free_device(self.device)
                    self._print_cnn_row(row)
        self.result["cnn_train_ratios"] = cnn_ratios(rows)
        # The trainer leaves cudnn.benchmark as torch's default (off); one extra row shows what it would give.
        if self.cuda and not torch.backends.cudnn.benchmark:
            row = {"variant": "AD", "amp": True, "channels_last": True, "cudnn_benchmark": True}
            torch.backends.cudnn.benchmark = True
            try:
                model, step = self._cnn_step("AD", True, True)
                done, seconds, loss = timed_loop(
                    lambda k: step(batch(k)), s["warmup"], s["steps"], self.device, self.loop_cap()
                )
                row.update(
                    images_per_s=round(done * s["batch_size"] / seconds, 1),
                    ms_per_step=round(1e3 * seconds / done, 3),
                    steps=done,
                    final_loss=float(loss.detach()),
                )
                base = next((r for r in rows if r["variant"] == "AD" and r["amp"] and r["channels_last"]), {})
                if base.get("images_per_s"):
                    row["ratio_vs_default"] = round(row["images_per_s"] / base["images_per_s"], 3)
                del model, step, loss
            except Exception as error:  # noqa: BLE001
                row["error"] = _error_text(error)
            finally:
                torch.backends.cudnn.benchmark = False
            self.result["cnn_train_cudnn_benchmark"] = row
            print(
                f"   with torch.backends.cudnn.benchmark=True (AD, AMP, channels-last): "
                f"{row.get('images_per_s', row.get('error'))} images/s"
                + (f" ({row['ratio_vs_default']:.2f}x the default)" if "ratio_vs_default" in row else "")
            )
        failed = [f"{r['variant']} amp={r['amp']} channels_last={r['channels_last']}" for r in rows if "error" in r]
        if failed:
            raise RuntimeError(
                f"{len(failed)} of {len(rows)} combinations failed ({'; '.join(failed)}): "
                f"{next(r['error'] for r in rows if 'error' in r)}"
            )

    def _print_cnn_row(self, row: dict) -> None:
        if "skipped" in row:
            value = f"skipped: {row['skipped']}"
        elif "error" in row:
            value = f"error: {row['error']}"
        else:
            value = (
                f"{row['images_per_s']:10.1f} img/s  {row['ms_per_step']:8.2f} ms/step  loss "
                f"{row['final_loss']:.4f}"
                + (f"  peak {row['peak_memory_mib']:.0f} MiB" if row.get("peak_memory_mib") is not None else "")
            )
        print(
            f"   {row['variant']:5s}  AMP {'on ' if row['amp'] else 'off'}  channels-last "
            f"{'on ' if row['channels_last'] else 'off'}  {value}",
            flush=True,
        )

    # -- input pipeline share

    def _pipeline(self, augment: bool, normalization: str, channels_last: bool):
        """The step's input half, exactly as make_cnn_step runs it (affectflow.trainer.chips_to_inputs:
        scale to [0,1], augment, normalize) after the gather, in the step's memory format."""
        import torch

        from affectflow.trainer import chips_to_inputs

        train_x = self.train_x
        memory_format = torch.channels_last if channels_last else torch.contiguous_format

        def pipeline(batch):
            return chips_to_inputs(train_x[batch], normalization, augment).contiguous(memory_format=memory_format)

        return pipeline

    def input_pipeline(self) -> None:
        from affectflow.normalize import METHODS

        s = self.s
        batch = self.batches(s["batch_size"], len(self.train_x), seed=1)
        out: dict = {
            "normalization": s["normalization"],
            "amp": "trainer default (on with CUDA)",
            "channels_last": True,
            "steps": s["pipeline_steps"],
        }
        self.result["input_pipeline"] = out
        for variant, (augment, _dropout) in VARIANTS.items():
            pipeline = self._pipeline(augment, s["normalization"], True)
            n_pipe, t_pipe, _ = timed_loop(
                lambda k: pipeline(batch(k)), s["warmup"], s["pipeline_steps"], self.device, self.loop_cap()
            )
            _model, step = self._cnn_step(variant, None, True)
            n_step, t_step, _ = timed_loop(
                lambda k: step(batch(k)), s["warmup"], s["pipeline_steps"], self.device, self.loop_cap()
            )
            pipe_ms, step_ms = 1e3 * t_pipe / n_pipe, 1e3 * t_step / n_step
            out[variant] = {
                "pipeline_ms": round(pipe_ms, 4),
                "step_ms": round(step_ms, 4),
                "share": round(pipe_ms / step_ms, 4),
            }
            _model = step = None  # free before the next variant
            free_device(self.device)
            print(
                f"   {variant:5s}  gather+scale{'+augment' if augment else ''}+normalize "
                f"{pipe_ms:8.3f} ms   full step {step_ms:8.3f} ms   share {100 * pipe_ms / step_ms:5.1f} %",
                flush=True,
            )
        # Each normalization alone (augmentation on): what choosing another method would cost per batch.
        by_method = {}
        for method in METHODS:
            try:
                pipeline = self._pipeline(True, method, True)
                n, t, _ = timed_loop(
                    lambda k: pipeline(batch(k)), s["warmup"], s["pipeline_steps"], self.device, self.loop_cap()
                )
                by_method[method] = round(1e3 * t / n, 4)
            except Exception as error:  # noqa: BLE001
                by_method[method] = f"error: {_error_text(error)}"
        out["pipeline_ms_by_normalization"] = by_method
        print(
            "   gather+scale+augment+normalize by method: "
            + ", ".join(f"{m} {v:.3f} ms" if isinstance(v, float) else f"{m} {v}" for m, v in by_method.items()),
            flush=True,
        )

    # -- extraction

    def extract(self) -> None:
        from affectflow.inference import extract_features

        s = self.s
        n = min(s["extract_frames"], len(self.train_x))
        model = self._cnn_model(0.0).eval()
        host = self.chips_host[:n].numpy()
        device_chips = self.train_x[:n]
        out = {"frames": n, "batch_size": s["extract_batch"], "normalization": s["normalization"]}
        self.result["extract"] = out
        warm = min(n, 2 * s["extract_batch"])
        for source, chips in (("host_numpy", host), ("device_tensor", device_chips)):
            extract_features(model, chips[:warm], s["normalization"], batch_size=s["extract_batch"])
            _sync(self.device)
            started = time.perf_counter()
            features, predictions = extract_features(model, chips, s["normalization"], batch_size=s["extract_batch"])
            _sync(self.device)
            seconds = time.perf_counter() - started
            if features.shape != (n, s["fc"]) or predictions.shape != (n,):
                raise AssertionError(
                    f"extract_features returned {features.shape} / {predictions.shape}, "
                    f"expected ({n}, {s['fc']}) / ({n},)"
                )
            out[f"{source}_frames_per_s"] = round(n / seconds, 1)
            out[f"{source}_seconds"] = round(seconds, 4)
            print(
                f"   extract_features from {source.replace('_', ' '):13s} {n / seconds:12.1f} frames/s "
                f"({n} frames, batch {s['extract_batch']})",
                flush=True,
            )
        out["peak_memory_mib"] = peak_mib(self.device)
        del model

    # -- RNN

    def _rnn(self):
        import torch

        from affectflow.models import FrameRNN, RNNConfig

        s = self.s
        torch.manual_seed(0)
        features, labels = synthetic_features(s["rnn_frames"], s["rnn_input"])
        features, labels = features.to(self.device), labels.to(self.device)
        model = FrameRNN(RNNConfig(input_size=s["rnn_input"], hidden=s["rnn_hidden"])).to(self.device)
        model.set_standardization(features.mean(0), features.std(0))
        return model, features, labels

    def rnn_train(self) -> None:
        import torch
        from torch import nn

        from affectflow.trainer import TrainSettings, masked_loss

        s = self.s
        model, features, labels = self._rnn()
        model.train()
        settings = TrainSettings(epochs=1, batch_size=s["rnn_batch"], clip_norm=1.0)
        # fit_rnn's step (its closure is not exposed): windows gathered on the device, MSE at every
        # step, gradient-norm clipping at 1.0 (the CLI default), SGD with the trainer's settings.
        optimizer = torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
        window = s["rnn_window"]
        steps = torch.arange(window, device=self.device)
        starts = torch.arange(len(features) - window + 1, device=self.device)
        batch = self.batches(s["rnn_batch"], len(starts), seed=2)

        def step(k):
            index = starts[batch(k)][:, None] + steps[None, :]
            loss = masked_loss(model(features[index]), labels[index], settings.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
            optimizer.step()
            return loss

        done, seconds, loss = timed_loop(step, s["warmup"], s["steps"], self.device, self.loop_cap())
        self.result["rnn_train"] = {
            "windows_per_s": round(done * s["rnn_batch"] / seconds, 1),
            "ms_per_step": round(1e3 * seconds / done, 4),
            "steps": done,
            "final_loss": float(loss.detach()),
            "hidden": s["rnn_hidden"],
            "window": window,
            "batch_size": s["rnn_batch"],
            "input_size": s["rnn_input"],
            "cell": "rnn tanh, 1 layer",
            "clip_norm": settings.clip_norm,
            "peak_memory_mib": peak_mib(self.device),
        }
        r = self.result["rnn_train"]
        print(
            f"   RNN training   {r['windows_per_s']:12.1f} windows/s  {r['ms_per_step']:8.3f} ms/step  "
            f"(h={r['hidden']}, W={window}, batch {r['batch_size']}, {r['input_size']}-d inputs)",
            flush=True,
        )

    def rnn_infer(self) -> None:
        import torch

        from affectflow.trainer import rnn_window_predictions

        s = self.s
        model, features, _labels = self._rnn()
        model.eval()
        n = min(s["rnn_infer_frames"], len(features))
        features = features[:n]
        with torch.no_grad():
            rnn_window_predictions(
                model, features[: 2 * s["rnn_infer_batch"]], s["rnn_window"], batch_size=s["rnn_infer_batch"]
            )
            _sync(self.device)
            started = time.perf_counter()
            predictions = rnn_window_predictions(model, features, s["rnn_window"], batch_size=s["rnn_infer_batch"])
            _sync(self.device)
            seconds = time.perf_counter() - started
        if predictions.shape != (n,):
            raise AssertionError(f"rnn_window_predictions returned {predictions.shape}, expected ({n},)")
        self.result["rnn_infer"] = {
            "windows_per_s": round(n / seconds, 1),
            "windows": n,
            "batch_size": s["rnn_infer_batch"],
            "window": s["rnn_window"],
            "hidden": s["rnn_hidden"],
            "peak_memory_mib": peak_mib(self.device),
        }
        print(
            f"   RNN inference  {n / seconds:12.1f} windows/s  ({n} windows of {s['rnn_window']} frames, "
            f"batch {s['rnn_infer_batch']}, rnn_window_predictions)",
            flush=True,
        )


def cnn_ratios(rows: list[dict]) -> list[dict]:
    """AMP on/off (same variant and layout) and channels-last on/off (same variant and AMP)."""
    by = {(r["variant"], r["amp"], r["channels_last"]): r.get("images_per_s") for r in rows}
    ratios = []
    for variant in VARIANTS:
        for cl in (False, True):
            on, off = by.get((variant, True, cl)), by.get((variant, False, cl))
            if on and off:
                ratios.append(
                    {"compare": "amp on/off", "variant": variant, "channels_last": cl, "ratio": round(on / off, 3)}
                )
        for amp in (False, True):
            on, off = by.get((variant, amp, True)), by.get((variant, amp, False))
            if on and off:
                ratios.append(
                    {"compare": "channels_last on/off", "variant": variant, "amp": amp, "ratio": round(on / off, 3)}
                )
    for amp in (False, True):
        for cl in (False, True):
            ad, plain = by.get(("AD", amp, cl)), by.get(("plain", amp, cl))
            if ad and plain:
                ratios.append({"compare": "AD/plain", "amp": amp, "channels_last": cl, "ratio": round(ad / plain, 3)})
    return ratios


# ----------------------------------------------------------------------------- environment


def environment(device) -> dict:
    import numpy as np
    import torch

    env = {
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            name=props.name,
            capability=f"{props.major}.{props.minor}",
            total_memory_gib=round(props.total_memory / 2**30, 2),
            multiprocessors=props.multi_processor_count,
            device_count=torch.cuda.device_count(),
        )
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                line = subprocess.run(
                    [
                        smi,
                        "--query-gpu=driver_version,clocks.max.sm,power.limit",
                        "--format=csv,noheader",
                        f"--id={device.index or 0}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=15,
                ).stdout.strip()
                env["nvidia_smi"] = line
            except Exception as error:  # noqa: BLE001
                env["nvidia_smi"] = f"error: {_error_text(error)}"
    else:
        env["name"] = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return env


def third_party_modules(names=None) -> list[str]:
    """Top-level non-stdlib modules among `names` (default: all loaded in this process)."""
    tops = {name.split(".")[0] for name in (sys.modules if names is None else names)}
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return sorted(n for n in tops if n not in stdlib and not n.startswith("_") and n != "__main__")


# ----------------------------------------------------------------------------- workflow


def workflow_availability() -> tuple[bool, str]:
    """(can run, reason): snakemake and affectflow._native importable, checked without importing them here."""
    import importlib.util

    if importlib.util.find_spec("snakemake") is None:
        return False, "snakemake is not installed"
    probe = subprocess.run(
        [sys.executable, "-c", "import affectflow._native"],
        capture_output=True,
        text=True,
        env=_workflow_env(None),
        timeout=120,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"the C++ extension affectflow._native is not importable ({last[:200]})"
    return True, ""


def _workflow_env(bin_dir: Path | None) -> dict:
    env = dict(os.environ)
    paths = [str(REPO / "src")] + [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    path = [str(Path(sys.executable).parent)] + ([str(bin_dir)] if bin_dir else [])
    env["PATH"] = os.pathsep.join(path + [env.get("PATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_workflow(device_name: str, cores: int, timeout: float) -> dict:
    """The tiny config's whole DAG in a temporary directory, as tests/test_workflow.py runs it."""
    import signal

    out: dict = {"command": None, "device": device_name, "cores": cores, "timeout_s": round(timeout)}
    with tempfile.TemporaryDirectory(prefix="affectflow-gpu-workflow-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        bin_dir = Path(tmp) / "bin"
        bin_dir.mkdir()
        env = _workflow_env(bin_dir)
        if shutil.which("affectflow", path=env["PATH"]) is None:
            # Not installed (bare node): the rules call `affectflow ...`; a shim runs the source tree's CLI.
            shim = bin_dir / "affectflow"
            shim.write_text(f"#!{sys.executable}\nimport sys\nfrom affectflow.cli import main\nsys.exit(main())\n")
            shim.chmod(0o755)
            out["affectflow_shim"] = True
        command = [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--cores",
            str(cores),
            "--configfile",
            str(REPO / "config" / "tiny.yaml"),
            "--config",
            f"device={device_name}",
        ]
        out["command"] = "snakemake " + " ".join(command[3:])
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            log, _ = process.communicate(timeout=timeout)
            out["returncode"] = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)  # our own process group: snakemake and its jobs
            try:
                log, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                log, _ = process.communicate()
            out["returncode"] = None
            out["timed_out"] = True
        out["wall_s"] = round(time.perf_counter() - started, 2)
        out["ok"] = out["returncode"] == 0
        if not out["ok"]:
            out["log_tail"] = (log or "")[-3000:]
        runs = {}
        for run_json in sorted(workdir.glob("results/*/*/seed*/run.json")) + sorted(
            workdir.glob("results/rnn/*/*/run.json")
        ):
            try:
                runs[str(run_json.parent.relative_to(workdir))] = json.loads(run_json.read_text()).get("device")
            except Exception:  # noqa: BLE001
                pass
        out["training_devices"] = sorted(set(d for d in runs.values() if d))
        out["training_runs"] = len(runs)
    return out


# ----------------------------------------------------------------------------- report


def print_summary(result: dict) -> None:
    env = result["environment"]
    print()
    print(
        f"== affectflow GPU check ({result['label']} figures): {env.get('name')}; torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}; total {result['total_s']:.0f} s"
    )
    s = result["settings"]
    recipe = result.get("paper_recipe") or []
    if recipe:
        print(
            f"\nPaper recipe (CNN {'/'.join(map(str, s['channels']))} FC {s['fc']}, authors' init, "
            f"{s['normalization']}, SGD momentum 0.9, batch {s['batch_size']}, {s['recipe_steps']} steps): "
            "training loss / label variance"
        )
        print("| lr | clip | k | first 10 steps | last 20 steps | finite |\n|---:|---:|---:|---:|---:|---|")
        for r in recipe:
            finite = "yes" if r["finite"] else f"no, from step {r['first_nonfinite_step']}"
            print(
                f"| {r['lr']:g} | {r['clip_norm']:g} | {r['init_k']:.2f} | {r['first_loss_ratio']:.4g} | "
                f"{r['last_loss_ratio']:.4g} | {finite} |"
            )
    rows = result.get("cnn_train") or []
    if rows:
        print(
            f"\nCNN training, images/s (CNN {'/'.join(map(str, s['channels']))} FC {s['fc']} at "
            f"{s['chip_size']}x{s['chip_size']}, batch {s['batch_size']}, {s['frames']} uint8 chips on the device, "
            f"{s['normalization']}, lr {s['throughput_lr']:g}; AD = augmentation + dropout 0.5)"
        )
        print("| variant | AMP | channels-last | images/s | ms/step | peak MiB |\n|---|---|---|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['variant']} | {'on' if r['amp'] else 'off'} | {'on' if r['channels_last'] else 'off'} | "
                f"{r.get('images_per_s', r.get('error', r.get('skipped', 'n/a')))} | {r.get('ms_per_step', '')} | "
                f"{r.get('peak_memory_mib') if r.get('peak_memory_mib') is not None else ''} |"
            )
        for q in result.get("cnn_train_ratios", []):
            fixed = ", ".join(
                f"{k.replace('_', '-')} {'on' if v else 'off'}" for k, v in q.items() if k in ("amp", "channels_last")
            )
            print(f"   ratio {q['compare']:21s} {q.get('variant', ''):5s} ({fixed}): {q['ratio']:.2f}x")
        if "cnn_train_cudnn_benchmark" in result:
            r = result["cnn_train_cudnn_benchmark"]
            print(
                f"   cudnn.benchmark=True (AD, AMP, channels-last): {r.get('images_per_s', r.get('error'))} images/s"
                + (f", {r['ratio_vs_default']:.2f}x the default" if "ratio_vs_default" in r else "")
            )
    p = result.get("input_pipeline")
    if p:
        print(
            "\nInput pipeline share of the training step (gather + scale + [augment] + normalize alone vs "
            "the full step, same batches, AMP default, channels-last)"
        )
        for variant in VARIANTS:
            if variant in p:
                v = p[variant]
                print(
                    f"   {variant:5s} pipeline {v['pipeline_ms']:.3f} ms / step {v['step_ms']:.3f} ms = "
                    f"{100 * v['share']:.1f} %"
                )
    e = result.get("extract")
    if e and "host_numpy_frames_per_s" in e:
        print(
            f"\nFeature extraction (extract_features, batch {e['batch_size']}): "
            f"{e['host_numpy_frames_per_s']} frames/s from host numpy, "
            f"{e.get('device_tensor_frames_per_s')} frames/s from a device tensor"
        )
    if result.get("rnn_train"):
        r = result["rnn_train"]
        print(
            f"RNN training (h={r['hidden']}, W={r['window']}, batch {r['batch_size']}): {r['windows_per_s']} windows/s"
        )
    if result.get("rnn_infer"):
        r = result["rnn_infer"]
        print(f"RNN inference (rnn_window_predictions, batch {r['batch_size']}): {r['windows_per_s']} windows/s")
    w = result.get("workflow") or {}
    if w.get("wall_s") is not None:
        print(
            f"Workflow (tiny config, --cores {w['cores']}, device={w['device']}): {w['wall_s']} s, "
            f"{'ok' if w['ok'] else 'FAILED' + (' (timed out)' if w.get('timed_out') else '')}"
            f"; training devices {w.get('training_devices')}"
        )
    mem = result["peak_memory"]
    print(f"Peak memory: device {mem['device_mib']} MiB, host RSS {mem['host_rss_mib']} MiB")
    print("\nSections:")
    for name in SECTIONS:
        print(f"   {name:15s} {result['sections'].get(name, 'not run')}")
    print(f"Modules the figures loaded beyond torch/numpy: {result.get('modules_beyond_torch_numpy')}")
    if result.get("forbidden_modules_loaded"):
        print(f"!! modules loaded that a bare node may lack: {result['forbidden_modules_loaded']}")


def write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="write every figure as JSON to this file")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without CUDA, run every section on the CPU with tiny step counts (figures labelled CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny networks and data (for tests)")
    parser.add_argument("--skip-workflow", action="store_true", help="do not run the tiny Snakemake workflow")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 100 on CUDA, 2 on CPU)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up steps per loop (default 10 on CUDA, 1 on CPU)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=450.0,
        help="wall-time budget of the whole run; the workflow gets what is left (default 450)",
    )
    parser.add_argument("--workflow-timeout", type=float, default=300.0, help="cap on the workflow's wall time (s)")
    parser.add_argument("--workflow-cores", type=int, default=4)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    baseline_modules = set(sys.modules)
    try:
        import numpy  # noqa: F401
        import torch

        baseline_modules = set(sys.modules)
    except ImportError as error:
        print(f"no CUDA device: torch/numpy not importable ({error})", file=sys.stderr)
        return 2
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    elif args.allow_cpu:
        device = torch.device("cpu")
    else:
        print(
            f"no CUDA device: torch {torch.__version__} (CUDA build {torch.version.cuda}) reports "
            "torch.cuda.is_available() == False; pass --allow-cpu to run the sections on the CPU",
            file=sys.stderr,
        )
        return 2

    sys.path.insert(0, str(REPO / "src"))  # as PYTHONPATH=src, in case it was left out
    partial: dict = {"schema": SCHEMA, "label": "GPU" if device.type == "cuda" else "CPU"}
    try:
        return run(args, device, started, baseline_modules, partial)
    except BaseException as error:  # noqa: BLE001 - run once on a lent node: keep what was measured
        if isinstance(error, KeyboardInterrupt):
            partial["fatal_error"] = "interrupted"
        else:
            traceback.print_exc()
            partial["fatal_error"] = traceback.format_exc()[-4000:]
        partial["partial"] = True
        partial["total_s"] = round(time.perf_counter() - started, 2)
        write_json(args.out, partial)
        print(
            f"!! bench/gpu.py stopped early: {_error_text(error)}; what was measured is in {args.out}", file=sys.stderr
        )
        return 1


def run(args, device, started: float, baseline_modules: set, result: dict) -> int:
    env = environment(device)
    result["environment"] = env
    print(
        f"bench/gpu.py on {env['name']}: torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
        + ("" if device.type == "cuda" else "  [CPU: tiny step counts, not GPU figures]"),
        flush=True,
    )
    bench = Bench(args, device, result, started)
    s = bench.s
    print(
        f"   data: {s['frames']} synthetic uint8 chips {s['chip_size']}x{s['chip_size']} on the device "
        f"({time.perf_counter() - started:.1f} s); {s['warmup']} warm-up + {s['steps']} timed steps per loop",
        flush=True,
    )

    print(f"Paper recipe at paper size ({s['recipe_steps']} steps per row):", flush=True)
    bench.run_section("paper_recipe", bench.paper_recipe)
    print("CNN training (variant x AMP x channels-last):", flush=True)
    bench.run_section("cnn_train", bench.cnn_train)
    print("Input pipeline share:", flush=True)
    bench.run_section("input_pipeline", bench.input_pipeline)
    print("Feature extraction:", flush=True)
    bench.run_section("extract", bench.extract)
    print("RNN:", flush=True)
    bench.run_section("rnn_train", bench.rnn_train)
    bench.run_section("rnn_infer", bench.rnn_infer)

    result["peak_memory"] = {
        "device_mib": round(max(a for a, _ in PEAKS), 1) if PEAKS else None,  # allocated by tensors
        "device_reserved_mib": round(max(r for _, r in PEAKS), 1) if PEAKS else None,  # by the caching allocator
        "host_rss_mib": host_rss_mib(),
    }
    # What the figures needed beyond torch and numpy (torch itself pulls in tqdm etc. when present).
    added = set(sys.modules) - baseline_modules
    before = set(third_party_modules(baseline_modules)) | {"affectflow"} | TORCH_DEPENDENCIES
    result["modules_loaded"] = third_party_modules()
    result["modules_beyond_torch_numpy"] = [m for m in third_party_modules(added) if m not in before]
    result["forbidden_modules_loaded"] = [m for m in FORBIDDEN_MODULES if m in added]
    result["core_s"] = round(time.perf_counter() - started, 2)
    result["workflow"] = None
    bench.save_partial()

    # The workflow last: it gets what is left of the budget.
    if args.skip_workflow:
        result["sections"]["workflow"] = "skipped: --skip-workflow"
    else:
        try:
            left = args.budget_s - (time.perf_counter() - started) - 15.0
            ok, reason = workflow_availability()
            if not ok:
                result["sections"]["workflow"] = f"skipped: {reason}"
            elif left < 60:
                result["sections"]["workflow"] = f"skipped: only {left:.0f} s of the --budget-s left"
            else:
                print(f"Workflow (tiny config, up to {min(left, args.workflow_timeout):.0f} s):", flush=True)
                w = run_workflow(device.type, args.workflow_cores, min(left, args.workflow_timeout))
                result["workflow"] = w
                result["sections"]["workflow"] = (
                    "ran"
                    if w["ok"]
                    else (
                        "error: " + ("timed out" if w.get("timed_out") else f"snakemake exit status {w['returncode']}")
                    )
                )
                print(f"   {w['wall_s']} s, {'ok' if w['ok'] else 'FAILED'}", flush=True)
        except Exception as error:  # noqa: BLE001
            result["sections"]["workflow"] = f"error: {_error_text(error)}"
            result["errors"]["workflow"] = traceback.format_exc()[-4000:]
    result["total_s"] = round(time.perf_counter() - started, 2)

    print_summary(result)
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    failed = [n for n, v in result["sections"].items() if v.startswith("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
