"""Timing and memory helpers: every timed loop synchronizes the device around it."""

from __future__ import annotations

import gc
import time

import torch

PEAKS: list[tuple[float, float]] = []  # (allocated, reserved) MiB peaks seen by peak_mib, for the overall peak


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_loop(fn, warmup: int, steps: int, device: torch.device, max_s: float) -> tuple[int, float, object]:
    """Run fn(k) `warmup` times, then up to `steps` times (stopping early past max_s): (steps, seconds, last)."""
    out = None
    for k in range(warmup):
        out = fn(k)
    sync(device)
    started = time.perf_counter()
    done = 0
    for k in range(steps):
        out = fn(warmup + k)
        done += 1
        if done % 10 == 0 and time.perf_counter() - started > max_s:
            break
    sync(device)
    return done, time.perf_counter() - started, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    """Peak allocated device memory (MiB) since the last reset_peak; None on CPU."""
    if device.type != "cuda":
        return None
    allocated = torch.cuda.max_memory_allocated(device) / 2**20
    PEAKS.append((allocated, torch.cuda.max_memory_reserved(device) / 2**20))
    return round(allocated, 1)


def overall_peaks() -> dict:
    """The largest device peaks of the run (None on CPU) and the host's peak RSS."""
    return {
        "device_mib": round(max(a for a, _ in PEAKS), 1) if PEAKS else None,  # allocated by tensors
        "device_reserved_mib": round(max(r for _, r in PEAKS), 1) if PEAKS else None,  # by the caching allocator
        "host_rss_mib": host_rss_mib(),
    }


def host_rss_mib() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    except Exception:  # noqa: BLE001 - not on every platform
        return None


def free_device(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()[:500]
