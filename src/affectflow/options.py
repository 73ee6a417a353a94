"""The flags many commands share, declared once (as detectron2's default_argument_parser does for its
tools): each command adds the ones it takes. Numbers are range-checked by the parser."""

from __future__ import annotations

import argparse

from .contracts import DEVICES


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", choices=DEVICES, help="where torch runs (auto: CUDA when present, else CPU)"
    )


def add_quiet(parser: argparse.ArgumentParser, short: bool = False) -> None:
    names = ("-q", "--quiet") if short else ("--quiet",)
    parser.add_argument(*names, action="store_true", help="no progress bars")


def add_threads(parser: argparse.ArgumentParser, help: str = "cores to use (default: all available)") -> None:
    parser.add_argument("--threads", type=positive_int, default=None, help=help)
