"""``affectflow align`` on long videos: peak memory does not grow with the video's length.

A face video of N and 4N frames (the test fixtures' moving astronaut, 320x240, a
short clip played forwards and backwards, with the face gone for a while in each
pass) is aligned by ``affectflow align`` in a fresh process each; the process's
peak resident memory at the end must not grow by more than a small bound from N to
4N frames. (A face file held in memory grows by ~28 kB a frame: ~130 MB from N to 4N.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import write_video

N_FRAMES = 1500
MAX_GROWTH_MB = 30.0
SIZE = (320, 240)

# ru_maxrss (kB on Linux) of `affectflow align` at its end, run in this fresh process.
MEASURE = """
import json, resource, sys
from affectflow.cli import main
code = main(["align", sys.argv[1], "-o", sys.argv[2], "--quiet", "--threads", "2"])
print(json.dumps({"code": code, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def write_long_video(path: Path, frames: int, clip: np.ndarray) -> Path:
    """`frames` frames of `clip` played forwards, backwards, forwards ... (no jumps), as mp4."""
    period = 2 * len(clip) - 2

    def frame(i: int) -> np.ndarray:
        k = i % period
        return clip[k if k < len(clip) else period - k]

    # a generator: the 6000 frames are never all in memory
    return write_video(path, (frame(i) for i in range(frames)), 25.0, size=SIZE)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, Path]:
    from affectflow.testing.reference import moving_face_video

    clip = moving_face_video(200, size=SIZE, face_width=100, hidden=((120, 140),))
    folder = tmp_path_factory.mktemp("long")
    return {n: write_long_video(folder / f"face_{n}.mp4", n, clip) for n in (N_FRAMES, 4 * N_FRAMES)}


def align_in_fresh_process(video: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(video), str(out)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_video_length(videos, tmp_path):
    from affectflow.faces.facefile import read_faces

    peaks = {}
    for frames, video in videos.items():
        out = tmp_path / f"{video.stem}.h5"
        measured = align_in_fresh_process(video, out)
        assert measured["code"] == 0
        peaks[frames] = measured["maxrss_kb"] / 1024.0
        track = read_faces(out, chips=False)
        assert len(track) == frames
        assert 0.8 < track.found.mean() < 0.95  # the face is gone 20 of every 398 frames
    growth = peaks[4 * N_FRAMES] - peaks[N_FRAMES]
    print(
        f"peak RSS: {N_FRAMES} frames {peaks[N_FRAMES]:.1f} MB, {4 * N_FRAMES} frames "
        f"{peaks[4 * N_FRAMES]:.1f} MB, growth {growth:.1f} MB"
    )
    assert growth < MAX_GROWTH_MB, peaks
