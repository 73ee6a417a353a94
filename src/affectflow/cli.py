"""The ``affectflow`` command: one entry point, a subcommand per stage.

Each area module defines ``add_commands(subparsers)`` and keeps heavy imports
(torch, cv2, h5py) inside its handlers so that ``--help`` stays fast.
A handler returns an exit code or None; bad input raises AffectflowError,
which is printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import __version__
from .errors import AffectflowError

# Area modules that contribute subcommands, in the order --help lists them. The synthetic
# corpus adds `synth` to the `corpus` group (affectflow.data.corpus_commands.corpus_commands), listed first.
COMMAND_MODULES = (
    "affectflow.synth.cli",
    "affectflow.data.corpus_commands",
    "affectflow.faces.align",
    "affectflow.faces.release",
    "affectflow.learning.commands",
    "affectflow.inference.evaluate",
    "affectflow.inference.predict",
    "affectflow.inference.extract",
    "affectflow.annotation.table",
    "affectflow.annotation.commands",
    "affectflow.reporting.tables",
    "affectflow.reporting.figures",
    "affectflow.workflow.profile",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="affectflow",
        description="Continuous emotion recognition from face video (Khorrami et al., ICIP 2016).",
    )
    parser.add_argument("--version", action="version", version=f"affectflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .io import claim_output, protect_inputs, release_claims

    try:
        outputs, inputs = path_arguments(args)
        protect_inputs(inputs)
        for output in outputs:
            claim_output(output)
        code = args.handler(args)
    except AffectflowError as error:
        print(f"affectflow {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"affectflow {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        release_claims()
    return int(code or 0)


def path_arguments(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(outputs, inputs): the path arguments declared as affectflow.io.OutputPath, and every other one."""
    from .io import OutputPath

    outputs, inputs = [], []
    for value in vars(args).values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Path):
                (outputs if isinstance(item, OutputPath) else inputs).append(item)
    return outputs, inputs


if __name__ == "__main__":
    sys.exit(main())
