"""The lead's shared pieces: atomic writers, video decoding, the face-file contract."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from affectflow import faces, video
from affectflow.errors import AffectflowError
from affectflow.io import atomic_dir, atomic_path


def _write_video(path, frames: int, size=(64, 48), fps=25.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8))
    writer.release()


def test_atomic_path_keeps_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "table.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_and_dir_publish_on_success(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        assert tmp.suffix == ".txt"
        tmp.write_text("done")
    assert (tmp_path / "a.txt").read_text() == "done"
    with atomic_dir(tmp_path / "corpus") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "corpus" / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "corpus"]


def test_video_times_follow_frames(tmp_path):
    path = tmp_path / "v.mp4"
    _write_video(path, frames=30)
    times, frames, info = video.read_video(path, gray=True)
    assert info.fps == pytest.approx(25.0)
    assert frames.shape == (30, 48, 64)
    np.testing.assert_allclose(times, np.arange(30) / 25.0, atol=1e-6)


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_bad_videos_are_named_errors(tmp_path, damage):
    path = tmp_path / "bad.mp4"
    if damage != "missing":
        _write_video(path, frames=50)
        data = path.read_bytes()
        path.write_bytes(b"not a video at all" * 10 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(AffectflowError, match="bad.mp4"):
        video.read_video(path)


def _track(n=5, size=8):
    rng = np.random.default_rng(0)
    return faces.FaceTrack(
        chips=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        normalized=rng.standard_normal((n, size, size)).astype(np.float16),
        found=np.array([True, False] * (n // 2) + [True] * (n % 2)),
        landmarks=rng.standard_normal((n, 5, 2)).astype(np.float32),
        transform=rng.standard_normal((n, 2, 3)).astype(np.float32),
        time=np.arange(n) / 25.0,
        attrs={"fps": 25.0, "chip_size": size},
    )


def test_face_file_round_trip(tmp_path):
    track = _track()
    faces.write_faces(tmp_path / "s.h5", track)
    back = faces.read_faces(tmp_path / "s.h5")
    for name in faces.DATASETS:
        np.testing.assert_array_equal(getattr(back, name), getattr(track, name))
    assert back.attrs["chip_size"] == 8 and "affectflow_version" in back.attrs


def test_face_file_rejects_ragged_tracks_without_writing(tmp_path):
    track = _track()
    track.found = track.found[:-1]
    with pytest.raises(AffectflowError, match="found"):
        faces.write_faces(tmp_path / "s.h5", track)
    assert not (tmp_path / "s.h5").exists()
    with pytest.raises(AffectflowError, match="not found"):
        faces.read_faces(tmp_path / "s.h5")


def test_every_subcommand_has_help():
    from affectflow.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert commands, "no subcommands registered"
    for name in commands:
        result = subprocess.run([sys.executable, "-m", "affectflow.cli", name, "--help"],
                                capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr)
        assert "usage: affectflow" in result.stdout
