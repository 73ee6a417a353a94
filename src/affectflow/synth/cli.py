"""``affectflow corpus synth``: the synthetic corpus's own subcommand, added to ``affectflow corpus``.

Listed in :data:`affectflow.cli.COMMAND_MODULES`; the renderer is imported by the handler only,
so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import re

from ..data.corpus_commands import corpus_commands
from ..io import OutputPath
from ..options import add_quiet


def _parse_counts(text: str) -> tuple[int, int, int]:
    try:
        counts = tuple(int(x) for x in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 3 or min(counts) < 0 or sum(counts) == 0:
        raise argparse.ArgumentTypeError(f"expected three counts train,dev,test like 3,3,3, got {text!r}")
    return counts


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 640x480, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _cmd_synth(args) -> int:
    from .writer import synthesize_corpus

    out = synthesize_corpus(
        args.out,
        seed=args.seed,
        subjects=args.subjects,
        seconds=args.seconds,
        fps=args.fps,
        size=args.size,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(out)
    return 0


def add_commands(subparsers) -> None:
    synth = corpus_commands(subparsers).add_parser(
        "synth",
        help="write the embedded synthetic corpus",
        description="Render the synthetic corpus (real face photos, expression driven by valence/arousal) "
        "in the AV+EC 2015 layout, atomically.",
    )
    synth.add_argument("--out", required=True, type=OutputPath, metavar="DIR", help="corpus folder to write")
    synth.add_argument("--seed", type=int, default=0, help="random seed; same seed, same corpus (0)")
    synth.add_argument(
        "--subjects",
        type=_parse_counts,
        default=(3, 3, 3),
        metavar="T,D,E",
        help="train,dev,test subject counts (3,3,3)",
    )
    synth.add_argument("--seconds", type=float, default=60.0, help="length of each recording (60)")
    synth.add_argument("--fps", type=float, default=25.0, help="frames per second (25); labels stay at 40 ms")
    synth.add_argument("--size", type=_parse_size, default=(640, 480), metavar="WxH", help="frame size (640x480)")
    synth.add_argument(
        "--workers", type=int, default=None, metavar="N", help="parallel processes (default: one per core)"
    )
    add_quiet(synth, short=True)
    synth.set_defaults(handler=_cmd_synth)
