"""Seeding and the RNG states a checkpoint keeps: python's, numpy's, torch's and CUDA's, as tensors and
plain values (affectflow.modelfile reads checkpoints with weights_only=True, which refuses anything else).
With a seed, CPU training is deterministic; a resumed run restores every state and ends with the same
weights as an uninterrupted one (README, "Determinism")."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_states() -> dict:
    """Every RNG's state as tensors and plain values (a checkpoint holds nothing else)."""
    version, python_state, gauss = random.getstate()
    _, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": torch.tensor(python_state, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": gauss,
        "numpy": torch.from_numpy(np.asarray(keys, np.int64)),
        "numpy_position": int(position),
        "numpy_gauss": [int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    python_state = tuple(int(v) for v in states["python"].tolist())
    random.setstate((states["python_version"], python_state, states["python_gauss"]))
    has_gauss, cached = states["numpy_gauss"]
    keys = states["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, states["numpy_position"], int(has_gauss), float(cached)))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
