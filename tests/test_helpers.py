"""The shared test helpers themselves (tests/helpers.py): videos, the in-process CLI, tables, process groups."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from helpers import (
    ProcessGroupTimeout,
    flat_frames,
    read_columns,
    read_table,
    run_cli,
    run_process_group,
    write_video,
)


def test_written_video_has_the_frames_size_and_rate(tmp_path):
    import cv2

    frames = flat_frames(12, size=(64, 48))
    assert frames.shape == (12, 48, 64, 3) and frames[3].min() == frames[3].max() == 21
    video = write_video(tmp_path / "sub" / "v.mp4", frames, fps=30.0)
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    decoded = []
    while (frame := capture.read())[0]:
        decoded.append(frame[1])
    capture.release()
    assert len(decoded) == 12 and decoded[0].shape == (48, 64, 3)
    assert np.abs(np.array(decoded, float).mean(axis=(1, 2, 3)) - frames[:, 0, 0, 0]).max() < 3
    grey = write_video(tmp_path / "grey.mp4", (np.full((40, 50), k, np.uint8) for k in range(5)))
    assert cv2.VideoCapture(str(grey)).get(cv2.CAP_PROP_FRAME_WIDTH) == 50
    with pytest.raises(AssertionError):  # OpenCV would drop a frame of another size without a word
        write_video(tmp_path / "ragged.mp4", [np.zeros((40, 50), np.uint8), np.zeros((40, 52), np.uint8)])


def test_run_cli_returns_code_and_output(tmp_path):
    code, out, err = run_cli("--version")
    assert code == 0 and out.startswith("affectflow ") and err == ""
    code, out, err = run_cli("corpus", "list", tmp_path / "absent")
    assert code == 2 and out == "" and "affectflow corpus: error:" in err
    with pytest.raises(AssertionError, match="exited 2"):
        run_cli("corpus", "list", tmp_path / "absent", check=True)


def test_tables_are_read_by_header(tmp_path):
    (tmp_path / "a.csv").write_text("time,value\n0.0,1.5\n0.04,-2\n")
    (tmp_path / "a.tsv").write_text("name\tnote\nx\ta, b\n")
    assert read_table(tmp_path / "a.csv") == [{"time": "0.0", "value": "1.5"}, {"time": "0.04", "value": "-2"}]
    assert read_table(tmp_path / "a.tsv") == [{"name": "x", "note": "a, b"}]
    columns = read_columns(tmp_path / "a.csv")
    assert list(columns) == ["time", "value"] and columns["value"].tolist() == [1.5, -2.0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone but not yet reaped by its parent
        return fh.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_timeout_stops_the_whole_process_group(tmp_path):
    """A command whose child ignores SIGTERM and outlives it: on the timeout, both are gone (SIGTERM, then
    SIGKILL after the grace time), and the error carries what the command printed."""
    pids = tmp_path / "pids"
    script = f"(trap '' TERM; sleep 60) & echo $! > {pids}; echo started; sleep 60"
    started = time.monotonic()
    with pytest.raises(ProcessGroupTimeout) as raised:
        run_process_group(["bash", "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=1, grace=1)
    assert time.monotonic() - started < 20
    assert "started" in raised.value.stdout and "started" in str(raised.value)
    child = int(pids.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "a child of the command outlived the timeout"


def test_a_finished_command_returns_its_output(tmp_path):
    result = run_process_group(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
