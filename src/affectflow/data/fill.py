"""Fill policy for frames where no face was found or tracked (FILL_POLICY).

The frame takes the last found frame's chip; frames before the first found frame get a blank (zero)
chip, so no frame borrows from the future. The CNN trains on found frames only; extraction fills every
frame, so the features, the RNN's windows and the scored prediction track cover the whole recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import fail

FILL_POLICY = "hold-last-found (frames before the first found face get a blank chip: causal)"


def fill_index(found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    """Index of the frame whose content each frame takes under FILL_POLICY; -1 before the first found face.

    Only earlier frames are ever used, so a filled frame never depends on the future.
    """
    found = np.asarray(found, dtype=bool)
    if not found.any():
        raise fail(where, "no frame with a detected face")
    positions = np.arange(len(found))
    return np.maximum.accumulate(np.where(found, positions, -1))


def apply_fill(values: np.ndarray, found: np.ndarray, where: str | Path = "<faces>") -> np.ndarray:
    """`values` [T,...] with face-lost frames filled under FILL_POLICY (blank = zeros before the first face)."""
    fill_index(found, where)  # refuses a recording without any face
    return ChunkFill()(values, found)


class ChunkFill:
    """FILL_POLICY over a recording that arrives in chunks: a chunk's frames before its first found face
    take the last found frame of the earlier chunks (blank before the recording's first face)."""

    def __init__(self) -> None:
        self.last: np.ndarray | None = None

    def __call__(self, values: np.ndarray, found: np.ndarray) -> np.ndarray:
        values, found = np.asarray(values), np.asarray(found, dtype=bool)
        index = np.maximum.accumulate(np.where(found, np.arange(len(found)), -1)) if len(found) else found.astype(int)
        filled = values[np.maximum(index, 0)] if len(values) else values.copy()
        before = index < 0
        if before.any():
            filled[before] = 0 if self.last is None else self.last
        if found.any():
            self.last = values[index[-1]].copy()
        return filled
