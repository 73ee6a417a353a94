"""The lead's shared pieces: atomic writers, video decoding, the face-file contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from affectflow.errors import AffectflowError
from affectflow.faces import facefile as faces
from affectflow.faces import video
from affectflow.io import atomic_dir, atomic_path
from helpers import flat_frames, write_video


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
    write_video(path, flat_frames(30))
    times, frames, info = video.read_video(path, gray=True)
    assert info.fps == pytest.approx(25.0)
    assert frames.shape == (30, 48, 64)
    np.testing.assert_allclose(times, np.arange(30) / 25.0, atol=1e-6)


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_bad_videos_are_named_errors(tmp_path, damage):
    path = tmp_path / "bad.mp4"
    if damage != "missing":
        write_video(path, flat_frames(50))
        data = path.read_bytes()
        path.write_bytes(b"not a video at all" * 10 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(AffectflowError, match="bad.mp4"):
        video.read_video(path)
    with pytest.raises(AffectflowError, match="bad.mp4"):
        list(video.iter_gray_chunks(path, 8))


def _track(n=5, size=8, start=0.0):
    rng = np.random.default_rng(0)
    found = np.array([True, False] * (n // 2) + [True] * (n % 2))
    source = np.where(found, np.where(np.arange(n) % 4 == 0, faces.DETECTED, faces.TRACKED), faces.LOST)
    return faces.FaceTrack(
        chips=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        normalized=rng.standard_normal((n, size, size)).astype(np.float16),
        found=found,
        source=source.astype(np.uint8),
        score=np.where(source == faces.DETECTED, rng.uniform(0, 2, n), np.nan).astype(np.float32),
        landmarks=rng.standard_normal((n, 5, 2)).astype(np.float32),
        transform=rng.standard_normal((n, 2, 3)).astype(np.float32),
        time=start + np.arange(n) / 25.0,
        attrs={"fps": 25.0, "chip_size": size},
    )


def _assert_same_rows(a, b):
    for name in faces.DATASETS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_face_file_round_trip(tmp_path):
    track = _track()
    faces.write_faces(tmp_path / "s.h5", track)
    back = faces.read_faces(tmp_path / "s.h5")
    _assert_same_rows(back, track)
    assert back.source.dtype == np.uint8 and back.score.dtype == np.float32
    assert back.attrs["chip_size"] == 8 and "affectflow_version" in back.attrs
    assert "face_source_derived" not in back.attrs


def test_face_file_written_in_chunks_equals_one_write(tmp_path):
    parts = [_track(n, start=offset) for n, offset in ((7, 0.0), (7, 0.28), (3, 0.56))]
    with faces.face_writer(tmp_path / "chunked.h5") as writer:
        for part in parts:
            writer.append(part)
        writer.attrs.update({"fps": 25.0, "note": "chunked"})
    back = faces.read_faces(tmp_path / "chunked.h5")
    whole = faces.FaceTrack(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in faces.DATASETS})
    _assert_same_rows(back, whole)
    assert back.attrs["note"] == "chunked" and len(back) == 17
    import h5py

    with h5py.File(tmp_path / "chunked.h5") as h5:  # resizable, chunked as the first append
        assert h5["chips"].maxshape[0] is None and h5["chips"].chunks[0] == 7


def test_face_writer_leaves_no_file_on_failure(tmp_path):
    target = tmp_path / "faces" / "s.h5"
    with pytest.raises(RuntimeError):
        with faces.face_writer(target) as writer:
            writer.append(_track())
            raise RuntimeError("aligner died")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with pytest.raises(AffectflowError, match="no frames"):
        with faces.face_writer(target):
            pass
    assert list(target.parent.iterdir()) == []


def test_face_file_without_source_and_score_still_reads(tmp_path):
    """Face files written before per-frame sources: source derived from found, scores NaN."""
    import h5py

    track = _track(6)
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as h5:
        for name in faces.REQUIRED_DATASETS:
            h5.create_dataset(name, data=getattr(track, name))
        h5.attrs["fps"] = 25.0
    back = faces.read_faces(path)
    np.testing.assert_array_equal(back.source, np.where(track.found, faces.TRACKED, faces.LOST))
    assert back.score.dtype == np.float32 and np.isnan(back.score).all()
    assert back.attrs["face_source_derived"] and back.attrs["fps"] == 25.0
    assert faces.read_faces(path, chips=False).source.shape == (6,)
    # Tracks made without source/score (older code) get the same defaults.
    legacy = faces.FaceTrack(
        chips=track.chips,
        normalized=track.normalized,
        found=track.found,
        landmarks=track.landmarks,
        transform=track.transform,
        time=track.time,
    )
    np.testing.assert_array_equal(legacy.source, back.source)


def test_face_track_rejects_sources_that_contradict_found(tmp_path):
    track = _track()
    track.source = np.full(len(track), faces.TRACKED, np.uint8)  # but some frames are not found
    with pytest.raises(AffectflowError, match="source and found"):
        faces.write_faces(tmp_path / "s.h5", track)
    assert not (tmp_path / "s.h5").exists()


def test_gray_chunks_are_the_frames_in_reused_buffers(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, flat_frames(23))
    times, frames, _ = video.read_video(path, gray=True)
    chunks = list((t, f.copy(), f) for t, f in video.iter_gray_chunks(path, 5, buffers=2))
    assert [len(t) for t, _, _ in chunks] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([f for _, f, _ in chunks]), frames)
    np.testing.assert_array_equal(np.concatenate([t for t, _, _ in chunks]), times)
    # two buffers, used in turn: chunk k and k + 2 share memory, k and k + 1 do not
    assert np.shares_memory(chunks[0][2], chunks[2][2]) and not np.shares_memory(chunks[0][2], chunks[1][2])


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
        result = subprocess.run(
            [sys.executable, "-m", "affectflow.cli", name, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0, (name, result.stderr)
        assert "usage: affectflow" in result.stdout
