"""Helpers every test file shares: write a test video, run the CLI in this process, read a CSV/TSV table,
and run Snakemake on this repository's Snakefile in a process group of its own.

(Workflow-specific helpers, such as job counts and config files, are in workflow_helpers.py; tiny models
trained through the CLI are in tiny_models.py.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from affectflow.testing.processes import ProcessGroupTimeout, run_process_group  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- videos


def write_video(
    path: Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 25.0,
    size: tuple[int, int] | None = None,
    fourcc: str = "mp4v",
) -> Path:
    """Write `frames` (uint8, grey [H,W] or BGR [H,W,3] each; an array [N,...] or any iterable, e.g. a
    generator for a long video) as a video with OpenCV; returns `path` (its folder is created).

    `size` is (width, height); by default the first frame's (or an empty array's) shape. Every frame must
    have that size: OpenCV would silently drop a frame of another size.
    """
    import cv2

    path = Path(path)
    if size is None:
        if isinstance(frames, np.ndarray):
            size = (frames.shape[2], frames.shape[1])
        else:
            frames = iter(frames)
            first = next(frames, None)
            if first is None:
                raise ValueError("write_video: no frames and no size")
            size = (first.shape[1], first.shape[0])
            frames = itertools.chain([first], frames)
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path} ({fourcc}, {width}x{height})"
    try:
        for frame in frames:
            assert frame.dtype == np.uint8 and frame.shape[:2] == (height, width), (frame.dtype, frame.shape, size)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame)
    finally:
        writer.release()
    return path


def flat_frames(count: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """`count` BGR frames of `size` (width, height), each one flat grey level: frame i is (7 i) mod 256."""
    levels = (np.arange(count) * 7 % 256).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, size[1], size[0], 3)).copy()


# --------------------------------------------------------------------------- the CLI


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(*args, check: bool = False) -> CliResult:
    """`affectflow ARGS...` in this process (arguments may be paths or numbers): its exit code and what it
    printed to stdout and stderr. With `check`, asserts that it exited 0 (the message shows its stderr)."""
    from affectflow.cli import main

    words = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(words)
        except SystemExit as stop:  # argparse: a bad option, --help, --version
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    result = CliResult(code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, f"affectflow {' '.join(words)} exited {code}:\n{result.err[-3000:]}"
    return result


# --------------------------------------------------------------------------- tables


def read_table(path: Path, delimiter: str | None = None) -> list[dict[str, str]]:
    """The rows of a CSV file (a TSV file: name ending in .tsv, or delimiter="\\t") as dicts by header."""
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def read_columns(path: Path, delimiter: str | None = None) -> dict[str, np.ndarray]:
    """A table of numbers (read_table) as {column: float64 array}, in the header's order."""
    rows = read_table(path, delimiter)
    assert rows, f"{path}: no rows"
    return {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}


# --------------------------------------------------------------------------- Snakemake


def tool_env() -> dict[str, str]:
    """The environment of a workflow run: this interpreter's bin first (affectflow, snakemake)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def snakemake(
    workdir: Path | None,
    *args,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    snakefile: Path | None = SNAKEFILE,
    grace: float = 10.0,
) -> subprocess.CompletedProcess:
    """`python -m snakemake -s SNAKEFILE -d WORKDIR ARGS...` as a subprocess in a process group of its own
    (run_process_group: stopped whole on a timeout or an interruption); returncode, stdout, stderr.

    `workdir` None: no -d (and it is created when given); `snakefile` None: no -s (Snakemake finds the
    Snakefile in `cwd`). `cwd` defaults to the workdir, else the repository; `env` to tool_env().
    """
    command = [sys.executable, "-m", "snakemake"]
    if snakefile is not None:
        command += ["-s", str(snakefile)]
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        command += ["-d", str(workdir)]
    command += [str(a) for a in args]
    return run_process_group(
        command,
        cwd=Path(cwd or workdir or REPO),
        env=tool_env() if env is None else env,
        timeout=timeout,
        grace=grace,
    )


def decoded_frames(video: Path) -> int:
    """Frames OpenCV decodes from a video, counted one by one (independently of affectflow's reader)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count
