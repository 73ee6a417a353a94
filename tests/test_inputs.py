"""Only regular files (and folders) are read: a FIFO, a device or a symlink loop given as an input gets one
line naming it and exit 2, at once (a FIFO would block a reader for ever), and nothing is written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import BIN


def affectflow(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "affectflow"), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def special(tmp_path):
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.safetensors"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    return {"FIFO": fifo, "symlink loop": loop, "device": "/dev/zero"}


@pytest.mark.parametrize("kind", ["FIFO", "symlink loop", "device"])
@pytest.mark.parametrize(
    "command",
    [
        ["predict", "{video}", "--model", "{input}", "-o", "{out}/t.csv", "--device", "cpu"],
        ["annotate", "--faces", "{input}", "--model", "{input}", "-o", "{out}/a.csv", "--device", "cpu"],
        ["align", "{input}", "-o", "{out}/f.h5"],
        ["align", "{video}", "--like", "{input}", "-o", "{out}/f.h5"],
        ["extract", "--model", "{input}", "--faces", "{input}", "-o", "{out}/x.h5", "--device", "cpu"],
    ],
    ids=["predict --model", "annotate", "align VIDEO", "align --like", "extract"],
)
def test_a_special_file_as_input_is_one_line_and_no_hang(tmp_path, special, kind, command):
    out = tmp_path / "out"
    out.mkdir()
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    args = [a.format(video=video, input=special[kind], out=out) for a in command]
    done = affectflow(*args, timeout=60)  # a FIFO opened for reading would block here
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(special[kind]) in lines[0], done.stderr
    assert "Traceback" not in done.stderr and list(out.iterdir()) == []


def test_the_cli_checks_inputs_before_the_command_runs():
    """The check sits in the CLI, for every path argument that is not an output (affectflow.io)."""
    done = subprocess.run(
        [sys.executable, "-c", "from affectflow.io import check_input_kind; check_input_kind('/dev/null')"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "/dev/null: is a device, not a regular file" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["train-cnn", "--corpus", "c", "--faces", "f.h5", "--variant", "plain", "--seed", "0", "--out", "o"],
        ["train-rnn", "--corpus", "c", "--cnn", "m", "--features", "f.h5", "--seed", "0", "--out", "o"],
    ],
    ids=["train-cnn", "train-rnn"],
)
@pytest.mark.parametrize("flag", ["--batch-size", "--epochs", "--eval-stride"])
@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_counts_are_range_checked_by_the_parser(command, flag, value):
    done = affectflow(*command, flag, value)
    assert done.returncode == 2 and f"argument {flag}" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "command, flag",
    [
        (["train-rnn", "--corpus", "c", "--cnn", "m", "--features", "f.h5", "--seed", "0", "--out", "o"], "--hidden"),
        (["train-rnn", "--corpus", "c", "--cnn", "m", "--features", "f.h5", "--seed", "0", "--out", "o"], "--window"),
        (["align", "v.mp4", "-o", "f.h5"], "--detect-every"),
        (["align", "v.mp4", "-o", "f.h5"], "--threads"),
        (["extract", "--model", "m", "--faces", "f.h5", "-o", "x.h5"], "--batch-size"),
    ],
)
def test_sizes_are_range_checked_by_the_parser(command, flag):
    done = affectflow(*command, flag, "0")
    assert done.returncode == 2 and f"argument {flag}: must be at least 1, got 0" in done.stderr
