"""CNN training throughput (images/s): affectflow's on-device pipeline against a naive baseline.

Ours: the whole training set is one device tensor of raw uint8 chips, batches are
gathered by index, augmentation A (affine_grid/grid_sample, gray-level jitter) and
then GCN run on the batch on the device, mixed precision (autocast + GradScaler) on CUDA.
Baseline: a torch DataLoader over per-sample numpy arrays with per-sample CPU
augmentation (cv2.warpAffine, flip, gamma/gain/offset and GCN in numpy), fp32,
batches copied to the device. Both train the same CNN with the same SGD settings for the
same number of steps in this one process; the ratio is the figure.

    python bench/train.py                       # the paper's CNN at 96x96 (use a GPU)
    python bench/train.py --steps 5 --chip-size 48 --channels 16,32,64   # the demo's CNN on CPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


class NaiveDataset(torch.utils.data.Dataset):
    """Per-sample numpy arrays, augmented one at a time on the CPU."""

    def __init__(self, chips: list[np.ndarray], labels: np.ndarray, seed: int) -> None:
        self.chips, self.labels = chips, labels
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, i: int):
        import cv2

        from affectflow.nets import augment as A

        x = self.chips[i].astype(np.float32) / 255.0
        size = x.shape[0]
        r = self.rng
        scale = r.uniform(*A.SCALE)
        angle = r.uniform(-A.ROTATION_DEG, A.ROTATION_DEG)
        # the crop spans `scale` chip sides and moves as far as it can (affectflow.nets.augment)
        m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0 / scale)
        m[:, 2] += r.uniform(-1.0, 1.0, 2) * abs(1.0 - scale) * size / 2
        x = cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if r.random() < 0.5:
            x = x[:, ::-1]
        x = np.clip(x, 0.0, None) ** r.uniform(*A.GAMMA) * r.uniform(*A.GAIN) + r.uniform(-A.OFFSET, A.OFFSET)
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
        x = (x - x.mean()) / max(float(x.std()), 1.0 / 255.0)  # GCN, as ours normalizes after augmenting
        return torch.from_numpy(np.ascontiguousarray(x, np.float32)[None]), torch.tensor(self.labels[i])


def make_model(args, device):
    from affectflow.nets.networks import CNNConfig, FaceCNN

    torch.manual_seed(0)
    channels = tuple(int(c) for c in args.channels.split(","))
    return FaceCNN(CNNConfig(chip_size=args.chip_size, channels=channels, fc=args.fc)).to(device)


def run_ours(args, chips: np.ndarray, labels: np.ndarray, device) -> float:
    from affectflow.learning.loop import cnn_optimizer, make_cnn_step
    from affectflow.learning.settings import TrainSettings

    model = make_model(args, device).train()
    optimizer, scaler = cnn_optimizer(model, TrainSettings(epochs=1), device)
    train_x = torch.from_numpy(chips).to(device)  # raw uint8 chips
    train_y = torch.from_numpy(labels).to(device)
    step = make_cnn_step(model, optimizer, scaler, train_x, train_y, True, device, normalization="gcn")
    order = torch.randperm(len(train_x), device=device)

    def batch(k):
        start = (k * args.batch_size) % (len(train_x) - args.batch_size + 1)
        return order[start : start + args.batch_size]

    for k in range(args.warmup):
        step(batch(k))
    _sync(device)
    started = time.perf_counter()
    for k in range(args.steps):
        loss = step(batch(k))
    float(loss.detach())  # wait for the device
    return args.steps * args.batch_size / (time.perf_counter() - started)


def run_naive(args, chips: np.ndarray, labels: np.ndarray, device) -> float:
    model = make_model(args, device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
    dataset = NaiveDataset(list(chips), labels, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers
    )
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = torch.mean((model(x) - y) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss.detach())
    return args.steps * args.batch_size / (time.perf_counter() - started)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on CUDA, 5 on CPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--frames", type=int, default=None, help="training frames (default 20000 on CUDA, 1024 on CPU)")
    parser.add_argument("--chip-size", type=int, default=96)
    parser.add_argument("--channels", default="64,128,256")
    parser.add_argument("--fc", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="baseline DataLoader workers")
    args = parser.parse_args()

    from affectflow.nets.tensors import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.steps = args.steps or (200 if cuda else 5)
    frames = args.frames or (20000 if cuda else 1024)
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (frames, args.chip_size, args.chip_size), dtype=np.uint8)
    labels = rng.uniform(-1, 1, frames).astype(np.float32)
    torch.set_num_threads(torch.get_num_threads())
    name = torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"device {name}; CNN {args.channels} fc {args.fc} at {args.chip_size}x{args.chip_size}, "
        f"batch {args.batch_size}, {args.steps} timed steps, {frames} frames, augmentation A"
    )
    naive = run_naive(args, chips, labels, device)
    print(f"naive DataLoader + CPU augmentation, fp32: {naive:10.1f} images/s")
    ours = run_ours(args, chips, labels, device)
    print(f"affectflow on-device data + augmentation{' + AMP' if cuda else ''}: {ours:10.1f} images/s")
    print(f"ratio ours/naive: {ours / naive:.2f}x")


if __name__ == "__main__":
    main()
