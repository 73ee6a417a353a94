"""Annotating an archive at scale: what `snakemake annotate` costs per video, in one run.

Prints:
  1. DAG: `snakemake annotate -n` wall seconds per video over placeholder folders of 1,000 and
     10,000 videos (ids 25 characters long), and the longest shell command it plans;
  2. cluster jobs: a dry run through profiles/slurm at 10,000 videos, GPU jobs (annotate_batch)
     and sbatch submissions (every job but the local ones) per 100 videos;
  3. short clips against one long clip: 40 clips of 4 s (100 frames of a real face photo in
     motion, 480x360) against one 160 s clip of the same 4,000 frames, both through
     `snakemake annotate --cores 2` with the same model (ours), and the same clips through one
     `affectflow align` + `affectflow annotate` process pair per clip (the baseline: a job per video).

    python bench/annotate.py [--skip-clips] [--videos 1000 10000]

The model is an untrained CNN+RNN at the demo's size (32x32 chips): what a video costs here does
not depend on the weights.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from affectflow.testing.processes import run_process_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, timeout: float = 1800) -> tuple[float, str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(workdir)}
    started = time.perf_counter()
    result = run_process_group(command, cwd=workdir, env=env, timeout=timeout)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def annotate_config(videos: Path, model: Path, batch: int | None = None) -> str:
    extra = f", batch: {batch}" if batch else ""
    return f"annotate={{videos: {videos}, models: [{model}]{extra}}}"


def placeholder_folder(root: Path, count: int) -> Path:
    folder = root / f"placeholders{count}"
    folder.mkdir()
    for k in range(count):
        (folder / f"session{k:06d}_camera_front_a.mp4").touch()  # a 25-character id
    return folder


def tiny_model(path: Path) -> Path:
    """An RNN model file (and its embedded CNN) at the demo's size, untrained."""
    import torch

    from affectflow.modelfile import FaceSettings, PipelineSettings, save_model_file
    from affectflow.nets.networks import CNNConfig, FaceCNN, FrameRNN, RNNConfig, config_dict, weights_sha256

    torch.manual_seed(0)
    cnn = FaceCNN(CNNConfig(chip_size=32, channels=(8, 16, 32), fc=100))
    rnn = FrameRNN(RNNConfig(input_size=100, nonlinearity="relu", hidden=100))
    settings = PipelineSettings(
        dimension="valence",
        label_shift=0.0,
        normalization="local-mean",
        faces=FaceSettings(chip_size=32, landmarks=5, detect_every=10, tracking=True),
        weights_sha256=weights_sha256(rnn),
        affectflow_version="bench",
        window=100,
        feature_norm="causal",
        feature_prior={"mean": [0.0] * 100, "std": [1.0] * 100, "frames": 250},
        cnn_sha256=weights_sha256(cnn),
    )
    cnn_part = (config_dict(cnn.config), cnn.state_dict())
    save_model_file(path, "rnn", config_dict(rnn.config), rnn.state_dict(), settings, cnn=cnn_part)
    return path


def clips(root: Path, count: int, frames: int) -> tuple[Path, Path]:
    """(folder with one long clip, folder with `count` clips of `frames` frames cut from it)."""
    import cv2

    from affectflow.synth import synthesize_corpus

    corpus = synthesize_corpus(
        root / "corpus", seed=3, subjects=(1, 0, 0), seconds=count * frames / 25.0, size=(480, 360), progress=False
    )
    long_dir, short_dir = root / "long", root / "short"
    long_dir.mkdir()
    short_dir.mkdir()
    source = next((corpus / "recordings_video").glob("*.mp4"))
    shutil.copy(source, long_dir / "long.mp4")
    capture = cv2.VideoCapture(str(source))
    for k in range(count):
        writer = cv2.VideoWriter(str(short_dir / f"clip{k:02d}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (480, 360))
        for _ in range(frames):
            ok, frame = capture.read()
            if not ok:
                raise SystemExit(f"{source}: fewer than {count * frames} frames")
            writer.write(frame)
        writer.release()
    return long_dir, short_dir


def per_process(videos: Path, model: Path, work: Path) -> float:
    """The baseline: one `affectflow align --like` and one `affectflow annotate` process per video."""
    started = time.perf_counter()
    for video in sorted(videos.glob("*.mp4")):
        faces, table = work / f"{video.stem}.h5", work / f"{video.stem}.csv"
        affectflow = str(BIN / "affectflow")
        subprocess.run([affectflow, "align", str(video), "-o", str(faces), "--like", str(model), "--quiet"], check=True)
        command = [affectflow, "annotate", "--faces", str(faces), "--model", str(model), "-o", str(table), "--quiet"]
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    from affectflow.testing.snakemake_output import job_counts, shell_commands

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--skip-clips", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as tmp:
        root = Path(tmp)
        model = tiny_model(root / "model.safetensors")

        print("1. DAG: snakemake annotate -n")
        for count in args.videos:
            folder = placeholder_folder(root, count)
            work = root / f"dag{count}"
            work.mkdir()
            seconds, output = snakemake(work, "annotate", "-n", "-p", "--config", annotate_config(folder, model))
            counts = job_counts(output)
            longest = max(map(len, shell_commands(output)), default=0)
            print(
                f"   {count:6d} videos: {seconds:6.2f} s, {1000 * seconds / count:.2f} ms per video, "
                f"{sum(counts.values())} jobs, longest shell command {longest} bytes"
            )

        count = max(args.videos)
        work = root / "slurm"
        work.mkdir()
        profile = str(REPO / "profiles" / "slurm")
        folder = root / f"placeholders{count}"
        seconds, output = snakemake(
            work, "--profile", profile, "annotate", "-n", "--config", annotate_config(folder, model)
        )
        counts = job_counts(output)
        submitted = sum(n for rule, n in counts.items() if rule not in ("annotate", "annotate_summary"))
        print(
            f"2. SLURM dry run at {count} videos ({seconds:.1f} s): {counts}\n"
            f"   per 100 videos: {100 * counts.get('annotate_batch', 0) / count:.2f} GPU jobs, "
            f"{100 * submitted / count:.2f} sbatch submissions"
        )

        if args.skip_clips:
            return 0
        print("3. 40 clips of 4 s against one 160 s clip (the same 4,000 frames), snakemake annotate --cores 2")
        long_dir, short_dir = clips(root, 40, 100)
        walls = {}
        for name, folder in (("one 160 s clip", long_dir), ("40 clips of 4 s", short_dir)):
            work = root / f"run-{folder.name}"
            work.mkdir()
            walls[name], _ = snakemake(work, "--cores", "2", "annotate", "--config", annotate_config(folder, model))
            print(f"   {name:16s} {walls[name]:7.1f} s")
        ours = walls["40 clips of 4 s"] / walls["one 160 s clip"]
        baseline_work = root / "per-process"
        baseline_work.mkdir()
        baseline = per_process(short_dir, model, baseline_work)
        print(f"   40 clips, a process pair per clip (baseline): {baseline:.1f} s")
        print(
            f"   short/long: ours {ours:.2f}x; baseline {baseline / walls['one 160 s clip']:.2f}x "
            f"(the baseline over ours: {baseline / walls['40 clips of 4 s']:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
