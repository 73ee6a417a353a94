"""The settings of the training stages, each one frozen object built once and passed whole:
CNNTraining (train-cnn) and RNNTraining (train-rnn) from their command lines, TrainSettings (the loop:
optimizer, epochs, selection) from either, and the recordings scored each epoch (EvalSet).

The parser's defaults are these classes' defaults, and run.json records the fields marked as recorded
(CNN_RUN_FIELDS, RNN_RUN_FIELDS) by name: what `--resume` compares (checkpoints.RESUME_MUST_MATCH) and
what the tables read. Light on purpose (no numpy, no torch): building the parser imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from ..contracts import CNN_VARIANTS, DEFAULT_FEATURE_NORM, DEFAULT_NORMALIZATION

if TYPE_CHECKING:
    import numpy as np

# Streaming training (affectflow.learning.stream): above this many GB of chips the CNN streams them;
# frames per contiguous read (9.4 MB of 96x96 chips, a multiple of the face file's 256-row HDF5
# chunks); chunks per shuffle buffer.
DEFAULT_MEMORY_BUDGET_GB = 4.0
STREAM_CHUNK_ROWS = 1024
STREAM_BUFFER_CHUNKS = 16

_CONTROL = {"recorded": False}  # how this process runs, not what the run is: not in run.json


@dataclass(frozen=True)
class _Common:
    """What both trainers take (their paths, seed, optimizer, selection and how they run)."""

    corpus: Path
    out: Path
    seed: int
    epochs: int = 30
    lr: float = 0.01
    batch_size: int = 128
    dimension: str = "valence"
    selection: str = "dev"
    eval_stride: int = 1
    max_minutes: float | None = None
    device: str = "auto"
    label_shift: str = field(default="0", metadata=_CONTROL)  # recorded as resolved (seconds), not as given
    resume: bool = field(default=False, metadata=_CONTROL)
    quiet: bool = field(default=False, metadata=_CONTROL)
    stop_after_epochs: int | None = field(default=None, metadata=_CONTROL)  # tests: simulate a kill

    @classmethod
    def from_args(cls, args):
        """From the command's parsed arguments (argparse destinations are the field names)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def loop_settings(self, shift: float, selection_set: str, **extra) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            label_shift=shift,
            selection=selection_set,
            max_minutes=self.max_minutes,
            clip_norm=self.clip_norm or None,
            stop_after_epochs=self.stop_after_epochs,
            progress=not self.quiet,
            **extra,
        )


@dataclass(frozen=True)
class CNNTraining(_Common):
    """train-cnn: the paper's CNN (variants plain, D, A, AD) on the face files' raw chips."""

    faces: tuple[Path, ...] = ()
    variant: str = "plain"
    channels: str = "64,128,256"
    fc: int = 300
    frame_stride: int = 1
    normalization: str = DEFAULT_NORMALIZATION
    clip_norm: float = 0.0
    init: str = "paper"
    stream: bool = False
    memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB
    stream_chunk_rows: int = STREAM_CHUNK_ROWS
    stream_buffer_chunks: int = STREAM_BUFFER_CHUNKS

    @property
    def augment(self) -> bool:
        return CNN_VARIANTS[self.variant][0]

    @property
    def dropout(self) -> float:
        return CNN_VARIANTS[self.variant][1]

    def conv_channels(self) -> tuple[int, ...]:
        from ..errors import AffectflowError

        try:
            return tuple(int(c) for c in self.channels.split(","))
        except ValueError:
            raise AffectflowError(f"--channels: expected integers like 64,128,256, got {self.channels!r}") from None


@dataclass(frozen=True)
class RNNTraining(_Common):
    """train-rnn: an RNN over windows of a frozen CNN's features."""

    cnn: Path = Path()
    features: tuple[Path, ...] = ()
    cell: str = "rnn"
    nonlinearity: str = "tanh"
    hidden: int = 100
    layers: int = 1
    recurrent_init: str = "pytorch"
    window: int = 100
    window_stride: int = 1
    loss: str = "mse"
    feature_norm: str = DEFAULT_FEATURE_NORM
    clip_norm: float = 1.0


def recorded_fields(stage: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(stage) if f.metadata.get("recorded", True))


CNN_RUN_FIELDS = recorded_fields(CNNTraining)
RNN_RUN_FIELDS = recorded_fields(RNNTraining)


@dataclass
class EvalSet:
    """Recordings scored each epoch: inputs for every frame (filled), gold at shift 0."""

    name: str  # "dev" or "val"
    inputs: list  # on the device (torch.Tensor), or read chunk by chunk (affectflow.learning.stream.ChunkedRecording)
    times: list[np.ndarray]
    gold: list[np.ndarray]


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    clip_norm: float | None = None
    label_shift: float = 0.0
    selection: str = "dev"  # which EvalSet picks the best epoch
    max_minutes: float | None = None
    stop_after_epochs: int | None = None  # debug: simulate a kill after this many epochs
    loss: str = "mse"
    progress: bool = True
    extra: dict = field(default_factory=dict)
