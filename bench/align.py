"""Alignment throughput, in one process, on synthetic-corpus videos (affectflow corpus synth).

Part 1, the aligner itself, on frames decoded to gray beforehand: (a) pure-Python
dlib-bin detect + landmarks + get_face_chip on every frame
(affectflow.testing.reference), (b) the native aligner detecting on every frame,
(c) the native aligner with tracking (the pipeline's default). Target: (c)/(a) >= 10x.
Detection dominates (a) and (b) on every frame alike, so they are timed on the
first --reference-frames frames; (c) runs over the first --frames.

Part 2, the whole path against decoding alone, on the same video: (decode) OpenCV
decoding + conversion to gray of every frame (affectflow.faces.video.iter_frames, as
any script would do it), (align) `affectflow align VIDEO -o FILE` (its CLI entry,
decoding, aligning, normalizing and writing the face file), alternated --repeats
times after one untimed warm-up run (the first run in a process also decodes
dlib's detector, about 0.4 s, and imports h5py); the ratio align/decode of each
round, and of the command's own frames/s line. Target: <= 2x (goal 1.5x). The
face file's landmarks are compared with (b)'s per-frame detection on the first
--frames frames: found frames and mean error in % of the inter-ocular distance.

The synthetic corpus loses the face for 0.6-1.6 s about every 20 s; while it is
lost the detector searches every few frames, so videos of a representative
length (default 60 s, 1500 frames) are used.

    python bench/align.py [--frames 500] [--reference-frames 100] [--video-frames 1500]
                          [--sizes 640x480,1280x720] [--threads N] [--repeats 3] [--skip-part1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from affectflow import _native
from affectflow.contracts import DEFAULT_CHIP_SIZE, DEFAULT_FACE_RULE  # noqa: E402
from affectflow.faces.align import CHIP_PADDING, default_threads  # noqa: E402
from affectflow.faces.landmark_models import landmark_model_path  # noqa: E402


def synthetic_video(size: tuple[int, int], frames: int, workdir: Path) -> Path:
    from affectflow.synth import synthesize_corpus

    seconds = max(2.0, frames / 25.0)
    root = synthesize_corpus(
        workdir / f"corpus_{size[0]}x{size[1]}",
        seed=1,
        subjects=(1, 0, 0),
        seconds=seconds,
        size=size,
        workers=1,
        progress=False,
    )
    return sorted((root / "recordings_video").glob("*.mp4"))[0]


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


def bench_aligner(frames: np.ndarray, args) -> dict:
    """Part 1: (a) dlib-py, (b) ours per frame, (c) ours tracking, on gray frames in memory."""
    from affectflow.testing.reference import ReferenceAligner

    count = len(frames)
    model = str(landmark_model_path(5))
    faces = {"chip_size": DEFAULT_CHIP_SIZE, "padding": CHIP_PADDING, "face_rule": DEFAULT_FACE_RULE}
    subset = frames[: args.reference_frames]
    reference = ReferenceAligner(landmarks=5)
    seconds_a, result_a = timed(lambda: reference.align_frames(subset))
    per_frame = _native.Aligner(model, **faces, tracking=False, threads=args.threads)
    seconds_b, result_b = timed(lambda: per_frame.process(frames, continue_track=False))
    seconds_b *= len(subset) / count  # timed on all frames: the rate is what counts
    tracker = _native.Aligner(model, **faces, tracking=True, detect_every=args.detect_every, threads=args.threads)

    def track():
        tracker.reset()
        return tracker.process(frames, continue_track=False)

    seconds_c, result_c = timed(track, repeats=3)
    single = _native.Aligner(model, **faces, tracking=True, detect_every=args.detect_every, threads=1)
    seconds_c1, _ = timed(lambda: single.process(frames, continue_track=False), repeats=3)
    identical = bool(
        np.array_equal(result_b["chips"][: len(subset)], result_a.chips)
        and np.array_equal(result_b["landmarks"][: len(subset)], result_a.landmarks, equal_nan=True)
    )
    both = result_b["found"] & result_c["found"]
    return dict(
        frames=count,
        a=len(subset) / seconds_a,
        b=len(subset) / seconds_b,
        c=count / seconds_c,
        c1=count / seconds_c1,
        found_b=result_b["found"].mean(),
        found_c=result_c["found"].mean(),
        detections=tracker.detections_run,
        identical=identical,
        error=landmark_error(result_c["landmarks"], result_b["landmarks"], both),
        per_frame=result_b,
    )


def decode_gray(video: Path) -> int:
    from affectflow.faces.video import iter_frames

    return sum(1 for _ in iter_frames(video, gray=True))


def align_command(video: Path, out: Path, threads: int) -> float:
    """Run `affectflow align` in this process; returns the frames/s of its summary line."""
    from affectflow.cli import main

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = main(["align", str(video), "-o", str(out), "--quiet", "--threads", str(threads)])
    if code != 0:
        raise SystemExit(f"affectflow align failed on {video}")
    return float(re.search(r"([0-9.]+) frames/s", captured.getvalue()).group(1))


def bench_pipeline(video: Path, args, workdir: Path, per_frame: dict | None) -> dict:
    """Part 2: decode + gray vs `affectflow align`, alternated on the same video."""
    from affectflow.faces.facefile import read_faces

    out = workdir / f"{video.stem}.h5"
    started = time.perf_counter()
    align_command(video, out, args.threads)  # warm-up: the detector's decoding, imports, file cache
    cold = time.perf_counter() - started
    rounds = []
    for _ in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        frames = decode_gray(video)
        decode_s, decode_cpu = time.perf_counter() - t0, time.process_time() - c0
        c0, t0 = time.process_time(), time.perf_counter()
        line_fps = align_command(video, out, args.threads)
        align_s, align_cpu = time.perf_counter() - t0, time.process_time() - c0
        rounds.append(
            dict(
                decode=decode_s,
                align=align_s,
                decode_cpu=decode_cpu,
                align_cpu=align_cpu,
                ratio=align_s / decode_s,
                line_ratio=(frames / line_fps) / decode_s,
            )
        )
    track = read_faces(out, chips=False)
    result = dict(frames=frames, cold=cold, rounds=rounds, found=track.found.mean())
    if per_frame is not None:
        n = len(per_frame["found"])
        both = per_frame["found"] & track.found[:n]
        result.update(
            found_ref=per_frame["found"].mean(),
            found_file=track.found[:n].mean(),
            missed=int((per_frame["found"] & ~track.found[:n]).sum()),
            error=landmark_error(track.landmarks[:n], per_frame["landmarks"], both),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=500, help="frames for part 1 (default 500: 20 s)")
    parser.add_argument(
        "--reference-frames", type=int, default=100, help="frames the pure-Python path (a) is timed on (default 100)"
    )
    parser.add_argument(
        "--video-frames", type=int, default=1500, help="frames of each video, all used by part 2 (default 1500: 60 s)"
    )
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="part 1: native aligner threads; part 2: affectflow align --threads (default: all)",
    )
    parser.add_argument("--detect-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="part 2 rounds (default 3)")
    parser.add_argument("--skip-part1", action="store_true", help="only the decode vs align comparison")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    print(
        f"bench/align.py: part 1 on {args.frames} frames, part 2 on {args.video_frames}-frame videos, "
        f"threads={args.threads}, detect_every={args.detect_every}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="affectflow-bench-") as tmp:
        workdir = Path(tmp)
        for size in sizes:
            video = synthetic_video(size, max(args.frames, args.video_frames), workdir)
            part1 = None
            if not args.skip_part1:
                from affectflow.faces.video import read_video

                _, gray, _ = read_video(video, gray=True)
                part1 = bench_aligner(np.ascontiguousarray(gray[: args.frames]), args)
                del gray
            part2 = bench_pipeline(video, args, workdir, part1["per_frame"] if part1 else None)
            results.append((f"{size[0]}x{size[1]}", part1, part2))
            print(f"  {size[0]}x{size[1]} done (load {os.getloadavg()[0]:.1f})", flush=True)
    if not args.skip_part1:
        print("\nPart 1: the aligner on frames in memory")
        print(
            "size       frames  (a) dlib-py  (b) ours/frame  (c) ours tracking  (c) 1 thread   (b)/(a)  (c)/(a)  "
            "found b/c     detections  landmark err  b==a"
        )
        for size, r, _ in results:
            print(
                f"{size:<10} {r['frames']:>6}  {r['a']:8.1f} f/s  {r['b']:10.1f} f/s  {r['c']:12.1f} f/s  "
                f"{r['c1']:8.1f} f/s  {r['b'] / r['a']:6.1f}x  {r['c'] / r['a']:6.1f}x  "
                f"{r['found_b']:.3f}/{r['found_c']:.3f}  {r['detections']:>5}/{r['frames']:<5}  "
                f"{100 * r['error']:9.2f} %   {'yes' if r['identical'] else 'NO':>4}"
            )
    print(
        "\nPart 2: decode + gray vs `affectflow align`, same video, alternated "
        f"({args.repeats} rounds after a warm-up; seconds, CPU seconds in brackets)"
    )
    print(
        "size       frames  decode+gray            affectflow align        align/decode median (min..max)  "
        "by frames/s line  cold run  found  vs per-frame: missed, landmark err"
    )
    for size, _, r in results:
        rounds = r["rounds"]
        ratios = [x["ratio"] for x in rounds]
        decode = statistics.median(x["decode"] for x in rounds)
        align = statistics.median(x["align"] for x in rounds)
        decode_cpu = statistics.median(x["decode_cpu"] for x in rounds)
        align_cpu = statistics.median(x["align_cpu"] for x in rounds)
        line = statistics.median(x["line_ratio"] for x in rounds)
        accuracy = (
            f"{r['missed']} of {int(round(r['found_ref'] * args.frames))}, {100 * r['error']:.2f} %"
            if "error" in r
            else "-"
        )
        print(
            f"{size:<10} {r['frames']:>6}  {decode:5.2f} s ({decode_cpu:4.2f})  "
            f"{align:10.2f} s ({align_cpu:4.2f})  {statistics.median(ratios):13.2f}x "
            f"({min(ratios):.2f}..{max(ratios):.2f})"
            f"  {line:15.2f}x  {r['cold']:7.2f} s  {r['found']:.3f}  {accuracy}"
        )


if __name__ == "__main__":
    main()
