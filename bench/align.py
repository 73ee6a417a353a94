"""Alignment throughput: dlib's Python API per frame vs the native aligner, in one process.

(a) pure-Python dlib-bin detect + landmarks + get_face_chip on every frame
    (affectflow.testing.reference), (b) the native aligner detecting on every frame,
(c) the native aligner with tracking (the pipeline's default). Frames come from a
synthetic-corpus video (affectflow corpus synth) at each size, decoded to gray
beforehand (decoding is timed separately). Target: (c)/(a) >= 10x.

Detection dominates (a) and (b) on every frame alike, so they are timed on the
first --reference-frames frames; (c) runs over all --frames, whose length should
be representative of the corpus (the synthetic corpus loses the face for
0.6-1.6 s about every 20 s, and while it is lost every frame needs a detection).

    python bench/align.py [--frames 500] [--reference-frames 100] [--sizes 640x480,1280x720] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from affectflow import _native  # noqa: E402
from affectflow.align import default_threads, landmark_model_path  # noqa: E402
from affectflow.testing.reference import ReferenceAligner  # noqa: E402


def synthetic_frames(size: tuple[int, int], frames: int, workdir: Path) -> tuple[np.ndarray, float]:
    """Gray frames of a one-subject synthetic corpus video, and the decode rate (frames/s)."""
    from affectflow.synth import synthesize_corpus
    from affectflow.video import read_video

    seconds = max(2.0, frames / 25.0)
    root = synthesize_corpus(workdir / f"corpus_{size[0]}x{size[1]}", seed=1, subjects=(1, 0, 0),
                             seconds=seconds, size=size, workers=1, progress=False)
    video = sorted((root / "recordings_video").glob("*.mp4"))[0]
    started = time.perf_counter()
    _, gray, _ = read_video(video, gray=True)
    decode_fps = len(gray) / (time.perf_counter() - started)
    return np.ascontiguousarray(gray[:frames]), decode_fps


def timed(function, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def landmark_error(points: np.ndarray, reference: np.ndarray, both: np.ndarray) -> float:
    """Mean landmark distance as a fraction of the inter-ocular distance (5-point model)."""
    ref = reference[both]
    iod = np.linalg.norm(ref[:, :2].mean(axis=1) - ref[:, 2:4].mean(axis=1), axis=1)
    return float((np.linalg.norm(points[both] - ref, axis=2).mean(axis=1) / iod).mean())


def bench_size(size, args, workdir: Path) -> dict:
    frames, decode_fps = synthetic_frames(size, args.frames, workdir)
    count = len(frames)
    model = str(landmark_model_path(5))
    reference = ReferenceAligner(landmarks=5)
    subset = frames[: args.reference_frames]
    seconds_a, result_a = timed(lambda: reference.align_frames(subset))
    per_frame = _native.Aligner(model, tracking=False, threads=args.threads)
    seconds_b, result_b = timed(lambda: per_frame.process(frames, continue_track=False))
    seconds_b *= len(subset) / count  # not timed on the subset: (c) is compared with it over all frames
    tracker = _native.Aligner(model, tracking=True, detect_every=args.detect_every, threads=args.threads)

    def track():
        tracker.reset()
        return tracker.process(frames, continue_track=False)

    seconds_c, result_c = timed(track, repeats=3)
    single = _native.Aligner(model, tracking=True, detect_every=args.detect_every, threads=1)
    seconds_c1, _ = timed(lambda: single.process(frames, continue_track=False), repeats=3)
    identical = bool(np.array_equal(result_b["chips"][: len(subset)], result_a.chips)
                     and np.array_equal(result_b["landmarks"][: len(subset)], result_a.landmarks, equal_nan=True))
    both = result_b["found"] & result_c["found"]
    return dict(
        size=f"{size[0]}x{size[1]}", frames=count, decode=decode_fps,
        a=len(subset) / seconds_a, b=len(subset) / seconds_b, c=count / seconds_c, c1=count / seconds_c1,
        found_b=result_b["found"].mean(), found_c=result_c["found"].mean(),
        detections=tracker.detections_run, identical=identical,
        error=landmark_error(result_c["landmarks"], result_b["landmarks"], both),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=500, help="frames per video (default 500: 20 s)")
    parser.add_argument("--reference-frames", type=int, default=100,
                        help="frames the pure-Python path (a) is timed on (default 100)")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--detect-every", type=int, default=10)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    print(f"bench/align.py: {args.frames} frames, native threads={args.threads}, detect_every={args.detect_every}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("size       frames  (a) dlib-py  (b) ours/frame  (c) ours tracking  (c) 1 thread   (b)/(a)  (c)/(a)  "
          "found b/c     detections  landmark err  b==a   decode")
    with tempfile.TemporaryDirectory(prefix="affectflow-bench-") as tmp:
        for size in sizes:
            r = bench_size(size, args, Path(tmp))
            print(f"{r['size']:<10} {r['frames']:>6}  {r['a']:8.1f} f/s  {r['b']:10.1f} f/s  {r['c']:12.1f} f/s  "
                  f"{r['c1']:8.1f} f/s  {r['b'] / r['a']:6.1f}x  {r['c'] / r['a']:6.1f}x  "
                  f"{r['found_b']:.3f}/{r['found_c']:.3f}  {r['detections']:>5}/{r['frames']:<5}  "
                  f"{100 * r['error']:9.2f} %   {'yes' if r['identical'] else 'NO':>4}  {r['decode']:.0f} f/s",
                  flush=True)


if __name__ == "__main__":
    main()
