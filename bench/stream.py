"""Streamed CNN training (affectflow.learning.stream) against the in-memory path, in one process.

1. Throughput: the same training step (affectflow.learning.loop.make_cnn_batch_step) on the same CNN, fed
   by the in-memory path (every training chip one device tensor, batches gathered by index) or by
   the stream (batches read from the face files through the shuffle buffer, one read-ahead thread),
   one epoch at a time, alternating, best epoch of each; prints images/s and the ratio.
2. The shuffle's effect: `affectflow train-cnn` with one seed (tests/test_train.py's tiny CNN: 4/8/8
   channels, FC 16, batch 32, gcn; the paper's lr and init), in memory (a full random permutation per
   epoch) and streamed with a buffer far smaller than the training set (a local shuffle); prints both
   training-loss curves and dev CCCs over E epochs.

    python bench/stream.py                       # the demo's CNN at 32x32 on CPU
    python bench/stream.py --chip-size 96 --channels 64,128,256 --fc 300 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_corpus(root: Path, args) -> list[Path]:
    from affectflow.testing.faces import write_face_corpus

    write_face_corpus(
        root / "corpus",
        root / "faces",
        train=2,
        dev=1,
        seconds=args.seconds,
        size=args.chip_size,
        noise=0.7,
        seed=0,
    )
    return sorted((root / "faces").glob("*.h5"))


def training_frames(paths: list[Path]):
    """(rows, labels) of each training face file: found frames (labels are not needed for speed)."""
    from affectflow.learning.stream import frame_index

    rows, labels = [], []
    for path in paths:
        _, found, _ = frame_index(path)
        r = np.flatnonzero(found)
        rows.append(r)
        labels.append(np.linspace(-0.5, 0.5, len(r), dtype=np.float32))
    return rows, labels


def throughput(args, paths: list[Path], device: torch.device) -> dict:
    from affectflow.learning.loop import cnn_optimizer, index_batches, make_cnn_batch_step, streamed_batches
    from affectflow.learning.settings import TrainSettings
    from affectflow.learning.stream import TrainingStream
    from affectflow.nets.networks import CNNConfig, FaceCNN

    train = [p for p in paths if p.stem.startswith("train")]
    rows, labels = training_frames(train)
    channels = tuple(int(c) for c in args.channels.split(","))
    torch.manual_seed(0)
    model = FaceCNN(CNNConfig(chip_size=args.chip_size, channels=channels, fc=args.fc)).to(device).train()
    optimizer, scaler = cnn_optimizer(model, TrainSettings(epochs=1), device)
    step = make_cnn_batch_step(model, optimizer, scaler, True, device, normalization="gcn")

    import h5py

    chips = []
    for path, r in zip(train, rows):
        with h5py.File(path) as h5:
            chips.append(h5["chips"][()][r])
    train_x = torch.from_numpy(np.concatenate(chips)).to(device)
    train_y = torch.from_numpy(np.concatenate(labels)).to(device)
    indices = index_batches(len(train_x), args.batch_size, device)

    def in_memory():
        for (index,) in indices():
            yield train_x[index], train_y[index]

    stream = TrainingStream(
        train, rows, labels, args.batch_size, chunk_rows=args.chunk_rows, buffer_chunks=args.buffer_chunks
    )
    paths_fed = {"in-memory": in_memory, "streamed": streamed_batches(stream, device)}

    def epoch(batches) -> float:
        started, frames = time.perf_counter(), 0
        for batch in batches():
            loss = step(*batch)
            frames += len(batch[0])
        float(loss.detach())  # wait for the device
        return frames / (time.perf_counter() - started)

    for k, (x, y) in enumerate(in_memory()):  # warm up
        step(x, y)
        if k == 2:
            break
    best = {name: 0.0 for name in paths_fed}
    for _ in range(args.rounds):
        for name, batches in paths_fed.items():
            best[name] = max(best[name], epoch(batches))
    return {"frames": len(train_x), **best, "ratio": best["streamed"] / best["in-memory"]}


def loss_curves(args, root: Path) -> dict:
    from affectflow.cli import main

    faces = [str(p) for p in sorted((root / "faces").glob("*.h5"))]
    common = ["train-cnn", "--corpus", str(root / "corpus"), "--faces", *faces, "--seed", "0", "--quiet"]
    # tests/test_train.py's tiny CNN, which learns this data at the paper's lr and init
    common += ["--variant", "plain", "--epochs", str(args.epochs), "--channels", "4,8,8", "--fc", "16"]
    common += ["--batch-size", "32", "--normalization", "gcn", "--device", args.device]
    stream = ["--stream", "--stream-chunk-rows", str(args.chunk_rows)]
    stream += ["--stream-buffer-chunks", str(args.buffer_chunks)]
    curves = {}
    for name, extra in (("in-memory", []), ("streamed", stream)):
        out = root / name
        assert main([*common, "--out", str(out), *extra]) == 0
        lines = (out / "history.tsv").read_text().splitlines()
        header = lines[0].split("\t")
        table = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
        curves[name] = {
            "train_loss": [float(r["train_loss"]) for r in table],
            "dev_ccc": [float(r["dev_ccc"]) for r in table],
        }
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=60.0, help="per subject (25 fps): 2 training subjects")
    parser.add_argument("--chip-size", type=int, default=32)
    parser.add_argument("--channels", default="16,32,64")
    parser.add_argument("--fc", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk-rows", type=int, default=128, help="stream: frames per read")
    parser.add_argument("--buffer-chunks", type=int, default=4, help="stream: chunks per shuffle buffer")
    parser.add_argument("--rounds", type=int, default=2, help="timed epochs per path (best counts)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the loss comparison")
    args = parser.parse_args()

    from affectflow.nets.tensors import resolve_device

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build_corpus(root, args)
        speed = throughput(args, paths, device)
        print(
            f"device {device}, chips {args.chip_size}x{args.chip_size}, CNN {args.channels}/fc {args.fc}, "
            f"batch {args.batch_size}, {speed['frames']} training frames, stream buffer "
            f"{args.buffer_chunks} x {args.chunk_rows} frames"
        )
        print(
            f"images/s: in-memory {speed['in-memory']:.1f}, streamed {speed['streamed']:.1f}, "
            f"streamed/in-memory {speed['ratio']:.3f}"
        )
        curves = loss_curves(args, root)
        for name, curve in curves.items():
            loss = " ".join(f"{v:.4f}" for v in curve["train_loss"])
            ccc = " ".join(f"{v:.3f}" for v in curve["dev_ccc"])
            print(f"{name:9s} train loss by epoch: {loss}")
            print(f"{name:9s} dev CCC by epoch:    {ccc}")
        final = {name: c["train_loss"][-1] for name, c in curves.items()}
        print(
            f"after {args.epochs} epochs: train loss in-memory {final['in-memory']:.4f}, streamed "
            f"{final['streamed']:.4f} (ratio {final['streamed'] / final['in-memory']:.3f}); best dev CCC "
            f"{max(curves['in-memory']['dev_ccc']):.3f} vs {max(curves['streamed']['dev_ccc']):.3f}"
        )


if __name__ == "__main__":
    main()
