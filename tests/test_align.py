"""``affectflow align`` and ``align_video`` on real (synthetic-corpus and rendered) videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectflow.faces.align import align_video, iter_aligned_chunks
from affectflow.faces.facefile import DATASETS, DETECTED, LOST, TRACKED, read_faces
from affectflow.faces.landmark_models import LANDMARK_DIR_VARIABLE
from affectflow.faces.normalize import normalize_chips
from affectflow.faces.settings import AlignSettings
from affectflow.testing.reference import moving_face_video
from helpers import run_cli, write_video


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    frames = moving_face_video(60, size=(480, 360), face_width=120, hidden=((30, 36),))
    return write_video(tmp_path_factory.mktemp("video") / "moving.mp4", frames)


def corpus_video(corpus: Path) -> Path:
    return sorted((corpus / "recordings_video").glob("*.mp4"))[0]


@pytest.mark.slow
def test_tracking_agrees_with_per_frame_detection_on_the_synthetic_corpus(synthetic_corpus):
    video = corpus_video(synthetic_corpus)
    per_frame = align_video(video, AlignSettings(tracking=False), progress=False)
    tracked = align_video(video, progress=False, threads=2)
    assert len(tracked) == len(per_frame) and per_frame.found.mean() > 0.5
    assert tracked.found.sum() >= per_frame.found.sum()
    assert tracked.attrs["detections_run"] < len(tracked) / 3 < per_frame.attrs["detections_run"]
    both = tracked.found & per_frame.found
    points = per_frame.landmarks[both]
    iod = np.linalg.norm(points[:, :2].mean(axis=1) - points[:, 2:4].mean(axis=1), axis=1)
    distance = np.linalg.norm(tracked.landmarks[both] - points, axis=2).mean(axis=1)
    assert (distance / iod).mean() < 0.02
    np.testing.assert_array_equal(tracked.time, per_frame.time)


def test_align_command_writes_the_face_file(face_video, tmp_path):
    out = tmp_path / "faces" / "moving.h5"
    _, summary, _ = run_cli(
        "align", face_video, "-o", out, "--threads", 2, "--quiet", "--normalization", "lcn-gauss", check=True
    )
    assert "60 frames" in summary and "found" in summary and "detections run" in summary and "frames/s" in summary
    track = read_faces(out)
    assert len(track) == 60
    assert track.chips.shape == (60, 96, 96) and track.chips.dtype == np.uint8
    assert track.normalized.dtype == np.float16 and track.landmarks.shape == (60, 5, 2)
    assert track.transform.shape == (60, 2, 3) and track.found.dtype == bool
    np.testing.assert_allclose(np.diff(track.time), 0.04, atol=1e-3)
    assert not track.found[30:36].any() and track.found[:30].all() and track.found[36:].all()
    missing = ~track.found
    assert np.isnan(track.landmarks[missing]).all() and np.isnan(track.transform[missing]).all()
    assert not track.chips[missing].any()
    np.testing.assert_array_equal(track.normalized, normalize_chips(track.chips, "lcn-gauss", dtype=np.float16))
    # where each frame's face comes from, and the detector's score where it found it
    assert track.source.dtype == np.uint8 and track.score.dtype == np.float32
    np.testing.assert_array_equal(track.source == LOST, missing)
    assert track.source[0] == DETECTED and (track.source == TRACKED).sum() > 30
    np.testing.assert_array_equal(np.isfinite(track.score), track.source == DETECTED)
    assert (track.score[track.source == DETECTED] > 0).all()
    attrs = track.attrs
    assert attrs["fps"] == 25.0 and attrs["chip_size"] == 96 and attrs["normalization"] == "lcn-gauss"
    assert attrs["landmark_model"] == "shape_predictor_5_face_landmarks" and attrs["source"] == str(face_video)
    assert 0 < attrs["detections_run"] < 30


def test_streamed_chunks_are_the_whole_video_aligned(face_video):
    whole = align_video(face_video, threads=2, progress=False)  # 2 cores: one decodes, one aligns
    chunks = iter_aligned_chunks(face_video, threads=2)
    parts = list(chunks)
    for name in DATASETS:
        np.testing.assert_array_equal(
            np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name), err_msg=name
        )
    assert chunks.frames == 60 and chunks.found_frames == whole.found.sum()
    for key in ("detections_run", "found_fraction", "fps", "landmark_model", "normalization"):
        assert chunks.attrs[key] == whole.attrs[key]
    with pytest.raises(RuntimeError, match="once"):
        iter(chunks)
    # Small chunks: the track continues from chunk to chunk (only where the face is gone do
    # chunk ends change which frames the detector searches).
    small = list(iter_aligned_chunks(face_video, threads=2, chunk_frames=7))
    assert [len(p) for p in small] == [7] * 8 + [4]
    np.testing.assert_array_equal(np.concatenate([p.found for p in small]), whole.found)
    np.testing.assert_array_equal(np.concatenate([p.time for p in small]), whole.time)
    points = whole.landmarks[whole.found]
    iod = np.linalg.norm(points[:, :2].mean(axis=1) - points[:, 2:4].mean(axis=1), axis=1)
    distance = np.linalg.norm(np.concatenate([p.landmarks for p in small])[whole.found] - points, axis=2)
    assert (distance.mean(axis=1) / iod).mean() < 0.02


def test_68_landmarks_and_other_chip_size(face_video):
    track = align_video(face_video, AlignSettings(landmarks=68, chip_size=64, normalization="none"), progress=False)
    assert track.chips.shape[1:] == (64, 64) and track.landmarks.shape[1:] == (68, 2)
    assert track.attrs["landmark_model"] == "shape_predictor_68_face_landmarks"
    assert float(track.normalized[track.found].max()) <= 1.0


def run_align_failing(video: Path, out: Path, *extra: str) -> str:
    code, _, err = run_cli("align", video, "-o", out, "--quiet", *extra)
    assert code == 2, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return err


def test_unreadable_video(tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"this is not a video")
    assert "broken.mp4" in run_align_failing(video, tmp_path / "out.h5")


def test_missing_video_and_video_without_frames(tmp_path):
    assert "video not found" in run_align_failing(tmp_path / "absent.mp4", tmp_path / "out.h5")
    empty = write_video(tmp_path / "empty.mp4", np.zeros((0, 64, 64), np.uint8))
    assert "empty.mp4" in run_align_failing(empty, tmp_path / "out.h5")


def test_video_without_a_face(tmp_path):
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "noface.mp4", rng.integers(0, 256, (12, 240, 320), dtype=np.uint8))
    error = run_align_failing(video, tmp_path / "out.h5")
    assert "no face found in any of its 12 frames" in error


def test_missing_landmark_model(face_video, tmp_path, monkeypatch):
    monkeypatch.setenv(LANDMARK_DIR_VARIABLE, str(tmp_path))
    error = run_align_failing(face_video, tmp_path / "out.h5")
    assert "landmark model not found" in error and "shape_predictor_5_face_landmarks.dat" in error


def test_bad_options(face_video, tmp_path):
    # refused by the parser (options.positive_int), before the video is opened
    assert "--detect-every: must be at least 1, got 0" in run_align_failing(
        face_video, tmp_path / "out.h5", "--detect-every", "0"
    )
