"""`snakemake annotate` on a folder of videos: one CSV row per decoded frame, a faceless video failing alone,
the folder's summary listing every video, and a rerun after adding a video aligning only what is new."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectflow.annotate import list_videos, write_summary
from tiny_models import aligned_corpus, train_tiny_models

REPO = Path(__file__).resolve().parents[1]


def decoded_frames(video: Path) -> int:
    """Frames OpenCV decodes from the file, counted one by one (independently of affectflow's reader)."""
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def transcode(source: Path, target: Path, size: tuple[int, int], fps: float) -> None:
    """The same video at another size and frame rate (frames resampled in time, as a transcoder does)."""
    capture = cv2.VideoCapture(str(source))
    source_fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for k in range(int(len(frames) / source_fps * fps)):
        writer.write(cv2.resize(frames[min(int(k / fps * source_fps), len(frames) - 1)], size))
    writer.release()


def faceless_video(path: Path, frames: int = 40) -> None:
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (160, 120))
    for k in range(frames):
        writer.write(np.full((120, 160, 3), 40 + k, np.uint8) + rng.integers(0, 20, (120, 160, 3), dtype=np.uint8))
    writer.release()


@pytest.fixture(scope="module")
def model_and_videos(tmp_path_factory):
    """A tiny CNN+RNN trained on a 1+1 subject synthetic corpus, and a folder of four videos."""
    root = tmp_path_factory.mktemp("annotate")
    corpus, faces = aligned_corpus(root, seed=1, seconds=3.0)
    train_tiny_models(root, corpus, faces, variant="plain", fc=8, hidden=6, cnn_epochs=1, rnn_epochs={"valence": 1})
    videos = root / "videos"
    videos.mkdir()
    shutil.copy(corpus.recording("train_1").video, videos / "first.mp4")
    shutil.copy(corpus.recording("dev_1").video, videos / "second.mp4")
    transcode(corpus.recording("dev_1").video, videos / "second_720p30.mp4", (1280, 720), 30.0)
    faceless_video(videos / "empty room.mp4")
    return root, root / "rnn" / "model.pt", videos, corpus


def annotate(workdir: Path, videos: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    config = f"annotate={{videos: {videos}, models: [{model}]}}"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(workdir),
            "--cores",
            "2",
            "annotate",
            "--config",
            config,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_video_ids_of_a_folder_and_a_sheet(tmp_path):
    (tmp_path / "v").mkdir()
    for name in ("b.mp4", "a clip.MOV", "notes.txt", ".hidden.mp4"):
        (tmp_path / "v" / name).write_bytes(b"")
    assert list(list_videos(tmp_path / "v")) == ["a_clip", "b"]
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("video\tid\nv/b.mp4\tinterview-1\nv/a clip.MOV\t\n")
    assert list_videos(sheet) == {"interview-1": tmp_path / "v" / "b.mp4", "a_clip": tmp_path / "v" / "a clip.MOV"}
    sheet.write_text("video\tid\nv/b.mp4\tsame\nv/a clip.MOV\tsame\n")
    with pytest.raises(Exception, match="two videos have the id 'same'"):
        list_videos(sheet)


def test_summary_lists_failures_with_their_logged_reason(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "logs").mkdir()
    (tmp_path / "a" / "ok.json").write_text(
        json.dumps({"id": "ok", "status": "ok", "frames": 10, "dimensions": ["valence"], "valence_mean": 0.1})
    )
    (tmp_path / "logs" / "bad.log").write_text("align bad.mp4: 100%\naffectflow align: error: bad.mp4: no face\n")
    rows = write_summary(["ok", "bad", "never"], tmp_path / "a", [tmp_path / "logs"], tmp_path / "s.tsv")
    assert [r["status"] for r in rows] == ["ok", "failed", "failed"]
    table = read_table_tsv(tmp_path / "s.tsv")
    assert table[1]["error"] == "affectflow align: error: bad.mp4: no face"
    assert "not run yet" in table[2]["error"] and table[0]["valence_mean"] == "0.1"


def read_table_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_annotate_a_folder_one_row_per_frame_and_a_faceless_video_fails_alone(model_and_videos, tmp_path):
    root, model, videos, _ = model_and_videos
    work = tmp_path / "work"
    result = annotate(work, videos, model)
    assert result.returncode != 0  # the faceless video failed; the others completed (keep-going)
    out = work / "results" / "annotations"
    for name in ("first", "second", "second_720p30"):
        rows = read_table(out / f"{name}.csv")
        assert list(rows[0]) == ["frame", "time", "found", "source", "score", "valence"]
        assert len(rows) == decoded_frames(videos / f"{name}.mp4")
        assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
        times = np.array([float(r["time"]) for r in rows])
        assert np.all(np.diff(times) > 0)
        assert {r["source"] for r in rows} <= {"detected", "tracked", "lost"}
        for r in rows:
            assert (r["source"] == "lost") == (r["found"] == "0")
            assert (r["score"] != "") == (r["source"] == "detected")
            assert np.isfinite(float(r["valence"]))
        assert any(r["source"] == "detected" for r in rows)
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert not (out / "faces" / f"{name}.h5").exists()  # temporary
    fps = np.diff([float(r["time"]) for r in read_table(out / "second_720p30.csv")]).mean()
    assert fps == pytest.approx(1 / 30, rel=0.02)
    assert not (out / "empty_room.csv").exists()
    assert "no face" in (work / "logs" / "annotate" / "align" / "empty_room.log").read_text()

    summary = {row["id"]: row for row in read_table_tsv(out / "summary.tsv")}
    assert set(summary) == {"first", "second", "second_720p30", "empty_room"}
    assert summary["empty_room"]["status"] == "failed" and "no face" in summary["empty_room"]["error"]
    for name in ("first", "second", "second_720p30"):
        row = summary[name]
        assert row["status"] == "ok" and int(row["frames"]) == decoded_frames(videos / f"{name}.mp4")
        assert 0 < float(row["found_percent"]) <= 100 and float(row["valence_sd"]) >= 0
        assert float(row["predict_s"]) >= 0 and float(row["duration_s"]) > 0

    # A new video: the rerun aligns it and retries the failed one, and touches none that succeeded.
    shutil.copy(videos / "first.mp4", videos / "third.mp4")
    rerun_started = time.time()
    try:
        result = annotate(work, videos, model)
    finally:
        (videos / "third.mp4").unlink()
    assert result.returncode != 0
    aligned = sorted(
        p.stem for p in (work / "logs" / "annotate" / "align").glob("*.log") if p.stat().st_mtime >= rerun_started
    )
    assert aligned == ["empty_room", "third"]
    assert len(read_table(out / "third.csv")) == decoded_frames(videos / "first.mp4")
    assert "third" in {row["id"] for row in read_table_tsv(out / "summary.tsv")}


def test_annotate_a_missing_face_file_is_a_named_error_and_writes_nothing(model_and_videos, tmp_path, capsys):
    from affectflow.cli import main

    _, model, _, _ = model_and_videos
    code = main(
        [
            "annotate",
            "--faces",
            str(tmp_path / "none.h5"),
            "--model",
            str(model),
            "-o",
            str(tmp_path / "none.csv"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2 and "face file not found" in capsys.readouterr().err
    assert not (tmp_path / "none.csv").exists() and not (tmp_path / "none.json").exists()
