"""rnn_train: FrameRNN training windows/s (the paper's h=100, W=100, batch 128, 300-d inputs, tanh).

The step is fit_rnn's own (affectflow.learning.loop.make_rnn_step): windows gathered on the device,
the loss (masked_loss) at every step, gradient-norm clipping at 1.0 (train-rnn's default), SGD with
the loop's settings.
"""

from __future__ import annotations

import torch

from affectflow.learning.loop import make_rnn_step, sgd_optimizer
from affectflow.learning.settings import TrainSettings

from .timing import peak_mib

NAME = "rnn_train"
HEADING = "RNN:"
CLIP_NORM = 1.0  # train-rnn --clip-norm's default


def run(bench) -> None:
    s = bench.s
    model, features, labels = bench.rnn()
    model.train()
    settings = TrainSettings(epochs=1, batch_size=s["rnn_batch"], clip_norm=CLIP_NORM)
    optimizer = sgd_optimizer(model, settings)
    window = s["rnn_window"]
    starts = torch.arange(len(features) - window + 1, device=bench.device)
    batch = bench.batches(s["rnn_batch"], len(starts), seed=2)
    window_step = make_rnn_step(model, optimizer, features, labels, window, settings)

    def step(k: int) -> torch.Tensor:
        return window_step(starts[batch(k)])

    done, seconds, loss = bench.timed(step)
    config = model.config
    r = bench.result["rnn_train"] = {
        "windows_per_s": round(done * s["rnn_batch"] / seconds, 1),
        "ms_per_step": round(1e3 * seconds / done, 4),
        "steps": done,
        "final_loss": float(loss.detach()),
        "hidden": s["rnn_hidden"],
        "window": window,
        "batch_size": s["rnn_batch"],
        "input_size": s["rnn_input"],
        "cell": f"{config.cell} {config.nonlinearity}, {config.layers} layer{'s' if config.layers > 1 else ''}",
        "clip_norm": settings.clip_norm,
        "peak_memory_mib": peak_mib(bench.device),
    }
    print(
        f"   RNN training   {r['windows_per_s']:12.1f} windows/s  {r['ms_per_step']:8.3f} ms/step  "
        f"(h={r['hidden']}, W={window}, batch {r['batch_size']}, {r['input_size']}-d inputs)",
        flush=True,
    )


def summary(result: dict) -> None:
    r = result.get("rnn_train")
    if r:
        print(
            f"RNN training (h={r['hidden']}, W={r['window']}, batch {r['batch_size']}): {r['windows_per_s']} windows/s"
        )
