"""input_pipeline: the input pipeline's share of a CNN training step.

Gather + scale + [augment] + normalize alone (affectflow.nets.tensors.chips_to_inputs, as the
trainer's step runs it) against the full training step on the same batches, per variant;
then the pipeline alone with each normalization method.
"""

from __future__ import annotations

import torch

from affectflow.contracts import CNN_VARIANTS, NORMALIZATIONS
from affectflow.nets.tensors import chips_to_inputs

from .bench import VARIANTS
from .timing import error_text, free_device

NAME = "input_pipeline"
HEADING = "Input pipeline share:"


def pipeline(bench, augment: bool, normalization: str, channels_last: bool = True):
    """batch -> the step's inputs, exactly as make_cnn_step makes them, in the step's memory format."""
    train_x = bench.train_x
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def inputs(batch: torch.Tensor) -> torch.Tensor:
        return chips_to_inputs(train_x[batch], normalization, augment).contiguous(memory_format=memory_format)

    return inputs


def run(bench) -> None:
    s = bench.s
    batch = bench.batches(s["batch_size"], len(bench.train_x), seed=1)
    out: dict = {
        "normalization": s["normalization"],
        "amp": "trainer default (on with CUDA)",
        "channels_last": True,
        "steps": s["pipeline_steps"],
    }
    bench.result["input_pipeline"] = out
    for variant in VARIANTS:
        augment = CNN_VARIANTS[variant][0]
        inputs = pipeline(bench, augment, s["normalization"])
        n_pipe, t_pipe, _ = bench.timed(lambda k: inputs(batch(k)), s["pipeline_steps"])
        _model, step = bench.cnn_step(variant)  # the trainer's defaults: AMP on with CUDA, channels-last
        n_step, t_step, _ = bench.timed(lambda k: step(batch(k)), s["pipeline_steps"])
        pipe_ms, step_ms = 1e3 * t_pipe / n_pipe, 1e3 * t_step / n_step
        out[variant] = {
            "pipeline_ms": round(pipe_ms, 4),
            "step_ms": round(step_ms, 4),
            "share": round(pipe_ms / step_ms, 4),
        }
        _model = step = None  # free before the next variant
        free_device(bench.device)
        print(
            f"   {variant:5s}  gather+scale{'+augment' if augment else ''}+normalize "
            f"{pipe_ms:8.3f} ms   full step {step_ms:8.3f} ms   share {100 * pipe_ms / step_ms:5.1f} %",
            flush=True,
        )
    # Each normalization alone (augmentation on): what choosing another method would cost per batch.
    by_method = {}
    for method in NORMALIZATIONS:
        try:
            inputs = pipeline(bench, True, method)
            n, t, _ = bench.timed(lambda k: inputs(batch(k)), s["pipeline_steps"])
            by_method[method] = round(1e3 * t / n, 4)
        except Exception as error:  # noqa: BLE001
            by_method[method] = f"error: {error_text(error)}"
    out["pipeline_ms_by_normalization"] = by_method
    print(
        "   gather+scale+augment+normalize by method: "
        + ", ".join(f"{m} {v:.3f} ms" if isinstance(v, float) else f"{m} {v}" for m, v in by_method.items()),
        flush=True,
    )


def summary(result: dict) -> None:
    p = result.get("input_pipeline")
    if not p:
        return
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
