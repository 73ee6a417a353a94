"""`affectflow corpus check | list | labels`: a corpus as its user sees it (affectflow.data.corpus reads it)."""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import affwild2
from .corpus import Recording, check, format_table, open_corpus
from ..contracts import (
    AFFWILD2_LABEL_DIR,
    AVEC_LABEL_DIR,
    AVEC_VIDEO_DIR,
    DEFAULT_FACE_RULE,
    DIMENSIONS,
    LABEL_TIME_COLUMN,
    LABEL_VALUE_COLUMN,
    PARTITIONS,
    SUBJECT_PATTERN,
    VIDEO_SUFFIXES,
)
from ..errors import AffectflowError, fail
from ..options import add_quiet




def _cmd_check(args) -> int:
    corpus = open_corpus(args.corpus, args.test_list)
    reports = check(corpus, progress=not args.quiet)
    print(format_table(reports))
    videos = {str(corpus.recording(r.subject).video): r.notes for r in reports}  # NAME_left, NAME_right: one video
    for video, notes in videos.items():
        for note in notes:
            print(f"note: {video}: {note}")
    bad = [(r.subject, path, problem) for r in reports for path, problem in r.problems]
    if bad:
        subject, path, problem = bad[0]
        more = f" (and {len(bad) - 1} more problem(s), see the table)" if len(bad) > 1 else ""
        raise fail(path or corpus.root, f"{problem}{more}")
    print(f"{corpus.root}: {len(reports)} subjects ok ({corpus.layout} layout)")
    return 0


def _cmd_list(args) -> int:
    corpus = open_corpus(args.corpus, args.test_list)
    lines = [
        f"{r.subject}\t{r.partition}\t{r.video}"
        for r in corpus.recordings
        if args.partition is None or r.partition == args.partition
    ]
    if lines:
        print("\n".join(lines))
    return 0


def frame_label_table(recording: Recording) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The labels the pipeline uses at every decoded frame of a recording: (frame times float64 [T],
    {dimension: float32 [T], NaN where none}): ``Recording.frame_labels`` at shift 0, the gold standard
    at each frame's time (by time) or the frame's own line (by frame); all NaN for an unlabelled one."""
    from ..faces.video import frame_times

    times = frame_times(recording.video)
    return times, {
        dimension: (
            recording.frame_labels(dimension, times)
            if dimension in recording.labels
            else np.full(len(times), np.nan, np.float32)
        )
        for dimension in DIMENSIONS
    }


def _cmd_labels(args) -> int:
    corpus = open_corpus(args.corpus, args.test_list)
    times, labels = frame_label_table(corpus.recording(args.subject))

    def cell(value) -> str:
        return np.format_float_positional(value, trim="-") if np.isfinite(value) else ""

    lines = ["frame,time," + ",".join(DIMENSIONS)]
    for k, time in enumerate(times):
        lines.append(f"{k},{time:.6f}," + ",".join(cell(labels[d][k]) for d in DIMENSIONS))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def corpus_commands(subparsers) -> argparse._SubParsersAction:
    """The subcommands of ``affectflow corpus``, the group made on first use: ``check`` and ``list``
    are this module's; :mod:`affectflow.synth.cli` adds ``synth``."""
    corpus = subparsers.choices.get("corpus")
    if corpus is None:
        corpus = subparsers.add_parser(
            "corpus",
            help="synthesize, list or check a corpus",
            description="Corpora in the AV+EC 2015 layout, described by a subjects.tsv sheet, or in the "
            "Aff-Wild2 layout.",
        )
        return corpus.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)
    return next(action for action in corpus._actions if isinstance(action, argparse._SubParsersAction))


def add_commands(subparsers) -> None:
    commands = corpus_commands(subparsers)

    check_parser = commands.add_parser(
        "check",
        help="validate a corpus (decodes videos, reads labels)",
        description="Print a per-subject table; exit 2 with a named error if anything is wrong.",
    )
    check_parser.add_argument("corpus", type=Path, help="corpus folder or subjects sheet")
    add_quiet(check_parser, short=True)
    _test_list_option(check_parser)
    check_parser.set_defaults(handler=_cmd_check)

    list_parser = commands.add_parser(
        "list",
        help="list subjects",
        description="One line per subject: subject<TAB>partition<TAB>video path.",
    )
    list_parser.add_argument("corpus", type=Path, help="corpus folder or subjects sheet")
    list_parser.add_argument("--partition", choices=PARTITIONS, default=None)
    _test_list_option(list_parser)
    list_parser.set_defaults(handler=_cmd_list)

    labels_parser = commands.add_parser(
        "labels",
        help="print a subject's per-frame labels",
        description="The labels the pipeline uses, one row per decoded frame: CSV frame,time,valence,arousal "
        "(an empty cell where a frame has none). By time (AV+EC, sheets): the gold standard interpolated at "
        "the frame's time; by frame (Aff-Wild2): the frame's own line, empty at -5 and past the file's end.",
    )
    labels_parser.add_argument("corpus", type=Path, help="corpus folder or subjects sheet")
    labels_parser.add_argument("subject")
    _test_list_option(labels_parser)
    labels_parser.set_defaults(handler=_cmd_labels)


def _test_list_option(parser) -> None:
    parser.add_argument(
        "--test-list", type=Path, default=None, help="Aff-Wild2: a file naming the test subjects, one a line"
    )
