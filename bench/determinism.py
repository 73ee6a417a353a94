"""What is deterministic: the same seed twice on one machine, against the same seed on 1 and 2 threads.

A different thread count sums in another order, as another CPU (other SIMD kernels in oneDNN
and OpenBLAS) does: floating-point results differ in the last bits, and training amplifies that.
This trains the demo's CNN (variant plain, 32x32 chips, 8/16/32 channels, FC 100, the demo's
optimizer settings) on a small synthetic corpus three times with seed 0 and prints each run's
dev CCC, training loss and the largest weight difference to the first run.

    python bench/determinism.py [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent
DEMO_CNN = ["--channels", "8,16,32", "--fc", "100", "--batch-size", "32", "--lr", "0.005", "--init", "he"]


def affectflow(*args, threads: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([str(BIN / "affectflow"), *map(str, args)], check=True, env=env, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    from safetensors.torch import load_file

    from affectflow.data.corpus import open_corpus
    from affectflow.synth import synthesize_corpus

    with tempfile.TemporaryDirectory(prefix="bench-determinism-") as tmp:
        root = Path(tmp)
        corpus = open_corpus(
            synthesize_corpus(root / "corpus", seed=0, subjects=(2, 1, 0), seconds=30, size=(320, 240), progress=False)
        )
        faces = []
        for recording in corpus.recordings:
            faces.append(root / "faces" / f"{recording.subject}.h5")
            affectflow("align", recording.video, "-o", faces[-1], "--chip-size", 32, "--threads", 2, "--quiet")
        runs = {"seed 0, 1 thread": 1, "seed 0, 1 thread, again": 1, "seed 0, 2 threads": 2}
        first = None
        print(f"train-cnn plain, {args.epochs} epochs, demo CNN settings, 2 train + 1 dev subjects x 30 s")
        for name, threads in runs.items():
            out = root / name.replace(" ", "_").replace(",", "")
            command = ["train-cnn", "--corpus", corpus.root, "--faces", *faces, "--variant", "plain", "--seed", 0]
            command += ["--out", out, "--epochs", args.epochs, "--device", "cpu", "--quiet", *DEMO_CNN]
            affectflow(*command, threads=threads)
            run = json.loads((out / "run.json").read_text())
            weights = load_file(out / "model.safetensors")
            first = first or weights
            difference = max(float((weights[k] - first[k]).abs().max()) for k in weights)
            print(
                f"  {name:26s} dev CCC {run['best_selection_ccc']:.6f}  lowest train loss "
                f"{run['lowest_train_loss']:.6f}  max |weight - first run's| {difference:.3g}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
