"""Chip normalization throughput: numpy/scipy vs the fused native kernels, in one process.

7500 chips of 96x96 (5 minutes at 25 fps). Baselines: the straightforward numpy
GCN (float32), scipy.ndimage LCN (affectflow.faces.normalize.normalize_reference,
per image), the scipy.ndimage local-mean reference (the authors' Normer3, one
zero-padded uniform_filter over the batch), and a memory floor: numpy's uint8
-> float32 cast into a preallocated array (the least memory traffic that
produces the output). Outputs are preallocated for the native kernels too.
Targets: GCN >= 5x numpy and <= 1.5x the floor; LCN >= 4x scipy (local-mean:
no target, the ratio is shown).

    python bench/normalize.py [--chips 7500] [--threads N] [--scipy-chips 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from affectflow.faces.normalize import gcn_numpy, normalize_chips, normalize_reference  # noqa: E402


def face_chips(count: int, size: int = 96) -> np.ndarray:
    """Astronaut face crops at random offsets, with noise: realistic chip statistics."""
    import cv2
    from skimage import data

    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(0)
    base = np.stack(
        [
            cv2.resize(gray[60 + dy : 200 + dy, 150 + dx : 290 + dx], (size, size))
            for dy, dx in rng.integers(0, 40, (64, 2))
        ]
    )
    chips = base[rng.integers(0, len(base), count)].astype(np.int16)
    chips += rng.integers(-8, 9, chips.shape, dtype=np.int16)
    return np.clip(chips, 0, 255).astype(np.uint8)


def best_time(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chips", type=int, default=7500)
    parser.add_argument("--threads", type=int, default=0, help="native threads (0: all CPUs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--scipy-chips",
        type=int,
        default=1500,
        help="scipy LCN and local-mean run on this many chips and are scaled to --chips "
        "(LCN is slow, local-mean's float64 copies are large)",
    )
    args = parser.parse_args()
    chips = face_chips(args.chips)
    out = np.empty(chips.shape, np.float32)
    out16 = np.empty(chips.shape, np.float16)
    out[...] = 0  # fault the pages in once, outside the timings
    out16[...] = 0
    repeats = args.repeats
    print(
        f"bench/normalize.py: {args.chips} chips 96x96, native threads={args.threads or os.cpu_count()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; best of {repeats}"
    )

    floor = best_time(lambda: np.copyto(out, chips, casting="unsafe"), repeats)
    numpy_gcn = best_time(lambda: gcn_numpy(chips), repeats)
    print(f"memory floor (uint8->float32 cast)  {1e3 * floor:8.1f} ms")
    print(f"GCN numpy float32                   {1e3 * numpy_gcn:8.1f} ms")
    # GCN is memory bound: one thread and all threads both shown (on a machine shared with
    # other work a second OpenMP thread can wait for a core and make things slower).
    for threads in sorted({1, args.threads or os.cpu_count() or 1}):
        ours_gcn = best_time(lambda: normalize_chips(chips, "gcn", out=out, threads=threads), repeats)
        ours_gcn16 = best_time(lambda: normalize_chips(chips, "gcn", out=out16, threads=threads), repeats)
        print(
            f"GCN ours float32, {threads} thread(s)        {1e3 * ours_gcn:8.1f} ms   "
            f"{numpy_gcn / ours_gcn:5.1f}x numpy (target >= 5x)   {ours_gcn / floor:4.2f}x floor (target <= 1.5x)"
        )
        print(
            f"GCN ours float16, {threads} thread(s)        {1e3 * ours_gcn16:8.1f} ms   "
            f"{numpy_gcn / ours_gcn16:5.1f}x numpy"
        )

    subset = chips[: args.scipy_chips]
    scale = args.chips / len(subset)
    for method in ("lcn-gauss", "lcn-box"):
        scipy_time = best_time(lambda: normalize_reference(subset, method), 1) * scale
        ours = best_time(lambda: normalize_chips(chips, method, out=out, threads=args.threads), max(2, repeats // 2))
        print(f"{method:<10} scipy (per image, {len(subset)} scaled){1e3 * scipy_time:8.1f} ms")
        print(
            f"{method:<10} ours float32              {1e3 * ours:8.1f} ms   {scipy_time / ours:5.1f}x scipy "
            f"(target >= 4x)"
        )
    # local-mean's reference filters the whole subset at once: best of a few runs, as the kernel.
    scipy_time = best_time(lambda: normalize_reference(subset, "local-mean"), max(2, repeats // 2)) * scale
    ours = best_time(lambda: normalize_chips(chips, "local-mean", out=out, threads=args.threads), max(2, repeats // 2))
    ours16 = best_time(
        lambda: normalize_chips(chips, "local-mean", out=out16, threads=args.threads), max(2, repeats // 2)
    )
    print(f"local-mean scipy (batched, {len(subset)} scaled) {1e3 * scipy_time:8.1f} ms")
    print(f"local-mean ours float32              {1e3 * ours:8.1f} ms   {scipy_time / ours:5.1f}x scipy")
    print(f"local-mean ours float16              {1e3 * ours16:8.1f} ms   {scipy_time / ours16:5.1f}x scipy")


if __name__ == "__main__":
    main()
