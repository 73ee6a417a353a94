"""`affectflow extract`: a CNN model file's per-frame features and predictions for one face file (the
RNN's input), read, predicted and written chunk by chunk (affectflow.inference.pipeline.extract_to_file)."""

from __future__ import annotations

from pathlib import Path

from ..io import OutputPath
from ..options import add_device, positive_int


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help="frozen CNN -> per-frame features of one subject",
        description="Write FEATURES.h5: features [T,fc], prediction [T], found [T], time [T] "
        "(face-lost frames filled by the fill policy).",
    )
    p.add_argument("--model", required=True, type=Path, help="CNN model file (a run dir means its model file)")
    p.add_argument("--faces", required=True, type=Path)
    p.add_argument("-o", "--output", required=True, type=OutputPath)
    add_device(p)
    p.add_argument("--batch-size", type=positive_int, default=512)
    p.set_defaults(handler=_extract_command)


def _extract_command(args) -> int:
    from ..nets.tensors import resolve_device
    from .pipeline import extract_to_file, load_pipeline

    extract_to_file(args.output, load_pipeline(args.model, resolve_device(args.device)), args.faces, args.batch_size)
    return 0
