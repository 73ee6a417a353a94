"""`snakemake annotate` on a folder or sheet of videos, in batches: one CSV row per decoded frame, a
faceless and a missing video recorded as failures without holding back their batch, the folder's
summary listing every video, a rerun after adding a video aligning only what is new, and no file left
by a writer killed outright."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectflow.annotation.outcomes import list_videos, read_listing, summarize
from affectflow.contracts import MODEL_FILE
from affectflow.faces.facefile import read_faces
from affectflow.testing.snakemake_output import job_counts, shell_commands
from helpers import BIN, REPO, decoded_frames, read_table, run_cli, snakemake, write_video
from tiny_models import aligned_corpus, train_tiny_models


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
    resampled = (
        cv2.resize(frames[min(int(k / fps * source_fps), len(frames) - 1)], size)
        for k in range(int(len(frames) / source_fps * fps))
    )
    write_video(target, resampled, fps, size=size)


def faceless_video(path: Path, frames: int = 40) -> None:
    rng = np.random.default_rng(0)
    noise = (
        np.full((120, 160, 3), 40 + k, np.uint8) + rng.integers(0, 20, (120, 160, 3), dtype=np.uint8)
        for k in range(frames)
    )
    write_video(path, noise, 25.0, size=(160, 120))


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
    return root, root / "rnn" / MODEL_FILE, videos, corpus


def annotate(workdir: Path, videos: Path, model: Path, **settings) -> subprocess.CompletedProcess:
    extra = "".join(f", {key}: {str(value).lower()}" for key, value in settings.items())
    config = f"annotate={{videos: {videos}, models: [{model}]{extra}}}"
    return snakemake(workdir, "--cores", "2", "annotate", "--config", config, timeout=900)


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


def test_summary_reads_the_outcomes_ok_failed_and_pending(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    for name in ("ok", "bad", "never"):
        (tmp_path / "v" / f"{name}.mp4").write_bytes(b"")
    (tmp_path / "a").mkdir()
    ok = {"id": "ok", "status": "ok", "frames": 10, "dimensions": ["valence"], "valence_mean": 0.1}
    (tmp_path / "a" / "ok.json").write_text(json.dumps(ok))
    bad = {"id": "bad", "status": "failed", "stage": "align", "error": "bad.mp4: no face found in any of its 9 frames"}
    (tmp_path / "a" / "bad.json").write_text(json.dumps(bad))
    counts, _ = summarize(list_videos(tmp_path / "v"), tmp_path / "a", tmp_path / "s.tsv")
    assert counts == {"ok": 1, "failed": 1, "pending": 1}
    table = {row["id"]: row for row in read_table(tmp_path / "s.tsv")}
    assert [table[v]["status"] for v in ("bad", "never", "ok")] == ["failed", "pending", "ok"]
    assert table["bad"]["error"] == bad["error"] and table["ok"]["valence_mean"] == "0.1"
    # the command prints the counts at any time (no -o: nothing written)
    code, out, _ = run_cli("annotate-summary", "--videos", tmp_path / "v", "--annotations", tmp_path / "a")
    assert code == 0 and "3 videos: 1 annotated, 1 failed, 1 pending" in out and "no face found" in out


def annotate_sheet(folder: Path, entries: dict[str, str]) -> Path:
    sheet = folder / "sheet.tsv"
    sheet.write_text("video\tid\n" + "".join(f"{video}\t{name}\n" for name, video in entries.items()))
    return sheet


def align_batch_logs(work: Path, since: float) -> dict[str, str]:
    folder = work / "logs" / "annotate" / "align"
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.log")) if p.stat().st_mtime >= since}


def test_annotate_a_sheet_in_batches_failures_are_data_and_a_rerun_does_only_the_new(model_and_videos, tmp_path):
    root, model, videos, _ = model_and_videos
    names = {"first": "first.mp4", "second": "second.mp4", "second_720p30": "second_720p30.mp4"}
    entries = {**names, "empty_room": "empty room.mp4", "missing": "not-there.mp4"}
    sheet = annotate_sheet(videos, entries)
    work = tmp_path / "work"
    started = time.time()
    result = annotate(work, sheet, model, batch=2, plots=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # no job failed
    out = work / "results" / "annotations"
    for name, video in names.items():
        rows = read_table(out / f"{name}.csv")
        assert list(rows[0]) == ["frame", "time", "found", "source", "score", "valence"]
        assert len(rows) == decoded_frames(videos / video)
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
    assert not (out / "work").exists() or not any((out / "work").iterdir())  # the aligned faces are temporary
    fps = np.diff([float(r["time"]) for r in read_table(out / "second_720p30.csv")]).mean()
    assert fps == pytest.approx(1 / 30, rel=0.02)
    assert not (out / "empty_room.csv").exists() and not (out / "missing.csv").exists()
    # 5 videos in batches of 2: three alignment jobs, three annotation jobs
    assert len(align_batch_logs(work, started)) == 3
    assert len(list((out / "batches").glob("b*.tsv"))) == 3

    summary = {row["id"]: row for row in read_table(out / "summary.tsv")}
    assert list(summary) == list(entries)  # the sheet's order
    assert summary["empty_room"]["status"] == "failed" and "no face" in summary["empty_room"]["error"]
    assert summary["missing"]["status"] == "failed" and "not found" in summary["missing"]["error"]
    for name, video in names.items():
        row = summary[name]
        assert row["status"] == "ok" and int(row["frames"]) == decoded_frames(videos / video)
        assert 0 < float(row["found_percent"]) <= 100 and float(row["valence_sd"]) >= 0
        assert float(row["predict_s"]) >= 0 and float(row["duration_s"]) > 0

    # A plain rerun aligns and annotates nothing: failures are data, not retried.
    result = annotate(work, sheet, model, batch=2, plots=True)
    assert result.returncode == 0 and "annotate_align" not in result.stdout + result.stderr

    # A new video: the rerun aligns and annotates it alone, in a batch of its own.
    shutil.copy(videos / "first.mp4", tmp_path / "third.mp4")
    sheet = annotate_sheet(videos, {**entries, "third": str(tmp_path / "third.mp4")})
    rerun_started = time.time()
    assert annotate(work, sheet, model, batch=2).returncode == 0
    logs = align_batch_logs(work, rerun_started)
    assert len(logs) == 1 and "third: aligned" in next(iter(logs.values())), logs
    assert len(read_table(out / "third.csv")) == decoded_frames(videos / "first.mp4")
    assert read_table(out / "summary.tsv")[-1]["id"] == "third"

    # retry_failed: the failed videos are tried again (and fail again); the annotated ones are left alone
    retry_started = time.time()
    assert annotate(work, sheet, model, batch=2, retry_failed=True).returncode == 0
    retried = "".join(align_batch_logs(work, retry_started).values())
    assert "empty_room: failed" in retried and "missing: failed" in retried and ": aligned" not in retried


def test_a_killed_writer_leaves_nothing_the_next_run_keeps(synthetic_corpus, tmp_path):
    """kill -9 while `affectflow align` writes: the face file never appears half-written, and the
    temporary the killed writer left is removed by the next write of the same file."""
    import signal

    video = next((synthetic_corpus / "recordings_video").glob("train_*.mp4"))
    target = tmp_path / "faces.h5"
    command = [str(BIN / "affectflow"), "align", str(video), "-o", str(target), "--threads", "1", "--quiet"]
    process = subprocess.Popen(command)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".faces.h5.partial-*")) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not target.exists()
    assert list(tmp_path.glob(".faces.h5.partial-*")), "the writer did not start"
    code, _, err = run_cli("align", video, "-o", target, "--threads", 1, "--quiet")
    assert code == 0, err
    assert target.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["faces.h5"]


def test_annotate_a_missing_face_file_is_a_named_error_and_writes_nothing(model_and_videos, tmp_path):
    _, model, _, _ = model_and_videos
    code, _, err = run_cli(
        "annotate", "--faces", tmp_path / "none.h5", "--model", model, "-o", tmp_path / "none.csv", "--device", "cpu"
    )
    assert code == 2 and "face file not found" in err
    assert not (tmp_path / "none.csv").exists() and not (tmp_path / "none.json").exists()


def test_a_dry_run_over_10000_videos_plans_batches_with_short_commands(model_and_videos, tmp_path):
    """10,000 placeholder videos through the SLURM profile: 100 alignment and 100 GPU jobs (batches of
    100), and no shell command that grows with the folder (each stays far under Linux's 128 KiB)."""
    _, model, _, _ = model_and_videos
    folder = tmp_path / "archive"
    folder.mkdir()
    for k in range(10_000):
        (folder / f"session{k:06d}_camera_front_a.mp4").touch()  # 25-character ids
    work = tmp_path / "work"
    work.mkdir()
    config = f"annotate={{videos: {folder}, models: [{model}]}}"
    profile = str(REPO / "profiles" / "slurm")
    result = snakemake(work, "--profile", profile, "annotate", "-n", "-p", "--config", config, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    counts = job_counts(output)
    assert counts == {"annotate_align": 100, "annotate_batch": 100, "annotate_summary": 1, "annotate": 1}
    commands = shell_commands(output)
    assert len(commands) == 201 and max(map(len, commands)) < 64 * 1024
    assert not (work / "results").exists()  # a dry run records no batch plan


def test_a_sheet_face_column_chooses_the_person_and_another_value_is_refused(tmp_path):
    """`face` (best, left, right; empty: best) per row; a value that is no face rule is one line naming the
    sheet, the row (the header is row 1) and the value: exit 2 and nothing written, or the workflow's
    error when it parses."""
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "pair.mp4").write_bytes(b"")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("video,id,face\nv/pair.mp4,pair_left,left\nv/pair.mp4,pair_right, right \nv/pair.mp4,pair,\n")
    videos, faces = read_listing(sheet)
    assert faces == {"pair_left": "left", "pair_right": "right", "pair": "best"} and len(set(videos.values())) == 1
    assert read_listing(tmp_path / "v")[1] == {"pair": "best"}  # a folder: best
    sheet.write_text("video,id,face\nv/pair.mp4,pair_left,left\nv/pair.mp4,pair_mid,middle\n")
    code, out, err = run_cli("annotate-summary", "--videos", sheet, "--annotations", tmp_path, "-o", tmp_path / "s.tsv")
    problem = f"{sheet}: row 3: face 'middle' is not a face rule (best, left, right; empty: best)"
    assert code == 2 and err.strip() == f"affectflow annotate-summary: error: {problem}"
    assert not (tmp_path / "s.tsv").exists()
    work = tmp_path / "work"
    code, _, err = run_cli(
        "align-batch", "--videos", sheet, "--ids", "pair_left", "--like", tmp_path / "m", "--model", tmp_path / "m",
        "--annotations", tmp_path / "a", "-o", work,
    )  # fmt: skip
    assert code == 2 and "row 3: face 'middle'" in err and len(err.strip().splitlines()) == 1
    assert not work.exists() and not (tmp_path / "a").exists()
    config = f"annotate={{videos: {sheet}, models: [{tmp_path / 'm.safetensors'}]}}"
    result = snakemake(tmp_path / "wf", "annotate", "-n", "--config", config)
    assert result.returncode != 0
    assert "WorkflowError in file" in result.stdout and f"\nconfig annotate: {problem}" in result.stdout


def face_sheet(folder: Path, video: Path, faces: dict[str, str]) -> Path:
    sheet = folder / "faces.tsv"
    sheet.write_text("video\tid\tface\n" + "".join(f"{video}\t{name}\t{face}\n" for name, face in faces.items()))
    return sheet


def detector_scores(table: Path) -> list[str]:
    return [row["score"] for row in read_table(table)]


def test_the_sheet_face_rule_reaches_the_face_file_and_the_outcome_and_a_changed_rule_is_redone(
    model_and_videos, tmp_path
):
    """Aff-Wild2's two-person videos: one video, annotated as pair_left and pair_right (and pair, best).
    The face files (kept: --notemp) and the outcomes record each one's rule, the tables follow that
    person (the detector's scores: the astronaut's on the left, best's pick here); changing pair's rule
    makes it pending again, and it is aligned anew (not taken over from the earlier round's best faces)."""
    from test_align_two_faces import render

    _, model, _, _ = model_and_videos
    video = write_video(tmp_path / "two faces.mp4", render(blur=((0.0, 3.5), (3.5, 0.0)), frames=30))
    faces = {"pair_left": "left", "pair_right": "right", "pair": ""}
    sheet = face_sheet(tmp_path, video, faces)
    work = tmp_path / "work"
    config = f"annotate={{videos: {sheet}, models: [{model}], batch: 3, plots: false}}"

    def run() -> str:
        started = time.time()
        result = snakemake(work, "--cores", "2", "--notemp", "annotate", "--config", config, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return "".join(align_batch_logs(work, started).values())

    run()
    out = work / "results" / "annotations"
    for name, face in faces.items():
        assert json.loads((out / f"{name}.json").read_text())["face_rule"] == (face or "best")
        (face_file,) = (out / "work").glob(f"b*/{name}.h5")
        assert read_faces(face_file).attrs["face_rule"] == (face or "best")
    scores = {name: detector_scores(out / f"{name}.csv") for name in faces}
    assert scores["pair"] == scores["pair_left"] != scores["pair_right"]
    assert scores["pair_left"][0] and scores["pair_right"][0]  # both found at once
    assert read_table(out / "summary.tsv")[0]["face_rule"] == "left"
    assert ": aligned" not in run()  # a plain rerun: all done

    sheet = face_sheet(tmp_path, video, {**faces, "pair": "right"})
    log = run()
    assert "pair: aligned" in log and "1 aligned, 0 reused, 0 failed, 2 done" in log, log
    assert json.loads((out / "pair.json").read_text())["face_rule"] == "right"
    assert detector_scores(out / "pair.csv") == scores["pair_right"]
