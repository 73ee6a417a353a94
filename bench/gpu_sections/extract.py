"""extract: feature extraction frames/s (affectflow.nets.tensors.cnn_forward, the 300-d features and the
prediction), from chips in host numpy and from chips already on the device."""

from __future__ import annotations

import time

from affectflow.nets.tensors import cnn_forward

from .timing import peak_mib, sync

NAME = "extract"
HEADING = "Feature extraction:"


def run(bench) -> None:
    s = bench.s
    n = min(s["extract_frames"], len(bench.train_x))
    model = bench.cnn_model().eval()
    out = {"frames": n, "batch_size": s["extract_batch"], "normalization": s["normalization"]}
    bench.result["extract"] = out
    warm = min(n, 2 * s["extract_batch"])
    for source, chips in (("host_numpy", bench.chips_host[:n].numpy()), ("device_tensor", bench.train_x[:n])):
        cnn_forward(model, chips[:warm], s["normalization"], batch_size=s["extract_batch"])
        sync(bench.device)
        started = time.perf_counter()
        features, predictions = cnn_forward(model, chips, s["normalization"], batch_size=s["extract_batch"])
        sync(bench.device)
        seconds = time.perf_counter() - started
        if features.shape != (n, s["fc"]) or predictions.shape != (n,):
            raise AssertionError(
                f"cnn_forward returned {features.shape} / {predictions.shape}, expected ({n}, {s['fc']}) / ({n},)"
            )
        out[f"{source}_frames_per_s"] = round(n / seconds, 1)
        out[f"{source}_seconds"] = round(seconds, 4)
        print(
            f"   cnn_forward from {source.replace('_', ' '):13s} {n / seconds:12.1f} frames/s "
            f"({n} frames, batch {s['extract_batch']})",
            flush=True,
        )
    out["peak_memory_mib"] = peak_mib(bench.device)


def summary(result: dict) -> None:
    e = result.get("extract")
    if e and "host_numpy_frames_per_s" in e:
        print(
            f"\nFeature extraction (cnn_forward, batch {e['batch_size']}): "
            f"{e['host_numpy_frames_per_s']} frames/s from host numpy, "
            f"{e.get('device_tensor_frames_per_s')} frames/s from a device tensor"
        )
