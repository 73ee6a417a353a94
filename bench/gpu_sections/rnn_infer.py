"""rnn_infer: RNN inference windows/s through affectflow.nets.tensors.rnn_window_predictions."""

from __future__ import annotations

import time

from affectflow.nets.tensors import rnn_window_predictions

from .timing import peak_mib, sync

NAME = "rnn_infer"
HEADING = None  # printed under rnn_train's "RNN:"


def run(bench) -> None:
    s = bench.s
    model, features, _labels = bench.rnn()
    model.eval()
    n = min(s["rnn_infer_frames"], len(features))
    features = features[:n]
    window, batch_size = s["rnn_window"], s["rnn_infer_batch"]
    rnn_window_predictions(model, features[: 2 * batch_size], window, batch_size=batch_size)  # warm-up
    sync(bench.device)
    started = time.perf_counter()
    predictions = rnn_window_predictions(model, features, window, batch_size=batch_size)
    sync(bench.device)
    seconds = time.perf_counter() - started
    if predictions.shape != (n,):
        raise AssertionError(f"rnn_window_predictions returned {predictions.shape}, expected ({n},)")
    bench.result["rnn_infer"] = {
        "windows_per_s": round(n / seconds, 1),
        "windows": n,
        "batch_size": batch_size,
        "window": window,
        "hidden": s["rnn_hidden"],
        "peak_memory_mib": peak_mib(bench.device),
    }
    print(
        f"   RNN inference  {n / seconds:12.1f} windows/s  ({n} windows of {window} frames, "
        f"batch {batch_size}, rnn_window_predictions)",
        flush=True,
    )


def summary(result: dict) -> None:
    r = result.get("rnn_infer")
    if r:
        print(f"RNN inference (rnn_window_predictions, batch {r['batch_size']}): {r['windows_per_s']} windows/s")
