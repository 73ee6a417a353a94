"""Nothing a user gave is lost, and no annotation goes stale (the archive's promises, README "Annotating
videos"): an output never replaces an input or a folder affectflow did not write; a batch killed by PID
resumes on a plain rerun without redoing what it finished; a replaced video or a removed outcome is
annotated again; a missing work folder or a hand-edited plan is refused with one line."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cv2
import pytest

from affectflow.contracts import MODEL_FILE
from helpers import decoded_frames, read_table, run_cli, snakemake, write_video
from test_annotate import annotate, model_and_videos  # noqa: F401  (the module's trained tiny models)


def tree(root: Path) -> dict[str, str]:
    """{relative path: SHA-256 (or 'dir' / 'link -> target')} of everything under `root`."""
    state = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def repeated_video(source: Path, target: Path, repeats: int) -> Path:
    """`source`'s frames `repeats` times over, as one video (a longer video of the same face)."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    return write_video(target, (f for _ in range(repeats) for f in frames), fps)


def statuses(annotations: Path) -> dict[str, str]:
    import json

    found = {}
    for path in annotations.glob("*.json"):
        if path.name.startswith("."):  # a killed writer's temporary (.v1.json.partial-*.json), not an outcome
            continue
        try:
            found[path.stem] = json.loads(path.read_text())["status"]
        except (ValueError, KeyError):  # being written
            continue
    return found


@pytest.fixture
def inputs(model_and_videos, tmp_path):  # noqa: F811
    """A copy of a video, its face file, the RNN and CNN model files, and a folder of the user's own."""
    root, model, videos, _ = model_and_videos
    folder = tmp_path / "videos"
    folder.mkdir()
    video = folder / "v1.mp4"
    shutil.copy(videos / "first.mp4", video)
    faces = tmp_path / "v1.h5"
    run_cli("align", video, "-o", faces, "--like", model, "--threads", 1, "--quiet", check=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's own file\n")
    (tmp_path / "link.h5").symlink_to(faces)
    return {"video": video, "faces": faces, "model": model, "cnn": root / "cnn" / MODEL_FILE, "mine": mine}


def test_no_output_replaces_an_input_or_a_folder_affectflow_did_not_write(inputs, tmp_path):
    v, f, m, folder = inputs["video"], inputs["faces"], inputs["model"], inputs["video"].parent
    attempts = {
        "align V -o V": (["align", v, "-o", v], v),
        "align V -o DIR/../V": (["align", v, "-o", folder / ".." / folder.name / v.name], v),
        "predict V -o V": (["predict", v, "--model", m, "-o", v, "--device", "cpu"], v),
        "predict --plot T.json -o T.csv (its JSON)": (
            ["predict", v, "--model", m, "-o", tmp_path / "t.csv", "--plot", tmp_path / "t.json"],
            tmp_path / "t.json",
        ),
        "annotate --faces X -o X": (["annotate", "--faces", f, "--model", m, "-o", f], f),
        "annotate --faces X -o a link to X": (["annotate", "--faces", f, "--model", m, "-o", tmp_path / "link.h5"], f),
        "extract --faces Y -o Y": (["extract", "--faces", f, "--model", inputs["cnn"], "-o", f], f),
        "annotate -o a.csv --summary a.csv": (
            ["annotate", "--faces", f, "--model", m, "-o", tmp_path / "a.csv", "--summary", tmp_path / "a.csv"],
            tmp_path / "a.csv",
        ),
        "annotate -o a.json (its summary too)": (
            ["annotate", "--faces", f, "--model", m, "-o", tmp_path / "a.json"],
            tmp_path / "a.json",
        ),
        "align-batch -o the videos' folder": (
            ["align-batch", "--videos", folder, "--ids", "v1", "--like", m, "--model", m]
            + ["--annotations", tmp_path / "ann", "-o", folder],
            folder,
        ),
        "align-batch -o a folder of the user's": (
            ["align-batch", "--videos", folder, "--ids", "v1", "--like", m, "--model", m]
            + ["--annotations", tmp_path / "ann", "-o", inputs["mine"]],
            inputs["mine"],
        ),
        "annotate -o under a file": (["annotate", "--faces", f, "--model", m, "-o", f / "x.csv"], f),
    }
    for name, (command, blamed) in attempts.items():
        before = tree(tmp_path)
        code, out, err = run_cli(*command)
        assert code == 2, (name, out, err)
        assert len(err.strip().splitlines()) == 1 and str(blamed) in err, (name, err)
        assert tree(tmp_path) == before, name  # nothing replaced, nothing written


def test_align_batch_replaces_only_its_own_folder(inputs, tmp_path):
    folder, m = inputs["video"].parent, inputs["model"]
    command = ["align-batch", "--videos", folder, "--ids", "v1", "--like", m, "--model", m]
    command += ["--annotations", tmp_path / "ann", "--quiet", "--threads", 1]
    work = tmp_path / "work" / "b00000-000000000000"
    run_cli(*command, "-o", work, check=True)
    assert (work / "v1.h5").is_file()
    run_cli(*command, "-o", work, check=True)  # its own folder: replaced
    assert sorted(p.name for p in work.parent.iterdir()) == [work.name]
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli(*command, "-o", empty, check=True)  # an empty folder holds nothing to lose
    assert (empty / "v1.h5").is_file()


def test_annotate_batch_refuses_a_missing_work_folder_and_marks_nothing_done(inputs, tmp_path):
    folder, m = inputs["video"].parent, inputs["model"]
    annotations = tmp_path / "ann"
    code, _, err = run_cli(
        "annotate-batch", "--videos", folder, "--ids", "v1", "--work", tmp_path / "nowhere", "--model", m,
        "--annotations", annotations, "--marker", tmp_path / "m.tsv", "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and "nowhere: no such work folder" in err and len(err.strip().splitlines()) == 1
    assert not annotations.exists() and not (tmp_path / "m.tsv").exists()


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ("id\tbatch\nv1\tx\n", "line 2: batch 'x' is not a batch id"),
        ("id\tbatch\nv1\tb00000/../../x\n", "line 2: batch 'b00000/../../x' is not a batch id"),
        ("id\tbatch\nv1 b00000\n", "line 2: 'v1 b00000' is not 'id<TAB>batch'"),
        (b"id\tbatch\nv\xff1\tb00000\n", "not UTF-8"),
        ("video\tbatch\nv1\tb00000\n", "line 1 must be the header"),
    ],
)
def test_a_hand_edited_plan_is_refused_with_its_line(inputs, tmp_path, plan, problem):
    folder, m = inputs["video"].parent, inputs["model"]
    plan_file = tmp_path / "plan.tsv"
    plan_file.write_bytes(plan if isinstance(plan, bytes) else plan.encode())
    code, _, err = run_cli(
        "align-batch", "--videos", folder, "--batch", "b00000", "--plan", plan_file, "--like", m, "--model", m,
        "--annotations", tmp_path / "ann", "-o", tmp_path / "work",
    )  # fmt: skip
    assert code == 2 and f"{plan_file}: " in err and problem in err, err
    assert not (tmp_path / "work").exists() and not (tmp_path / "ann").exists()


def test_the_workflow_names_a_hand_edited_plan(inputs, tmp_path):
    folder, m = inputs["video"].parent, inputs["model"]
    work = tmp_path / "work"
    plan = work / "results" / "annotations" / "batches" / "plan.tsv"
    plan.parent.mkdir(parents=True)
    plan.write_text("id\tbatch\nv1\tx\n")
    result = snakemake(work, "-n", "annotate", "--config", f"annotate={{videos: {folder}, models: [{m}]}}")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "plan.tsv: line 2: batch 'x' is not a batch id" in output, output[-2000:]
    assert "Traceback" not in output


def annotate_batch_process(workdir: Path) -> int | None:
    """The PID of the `affectflow annotate-batch` process running in `workdir` (not its shell)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"annotate-batch" in (entry / "cmdline").read_bytes().split(b"\0") and (
                Path(os.readlink(entry / "cwd")) == workdir.resolve()
            ):
                return int(entry.name)
        except OSError:
            continue
    return None


def test_a_batch_killed_by_pid_resumes_on_a_plain_rerun_and_redoes_nothing(model_and_videos, tmp_path):  # noqa: F811
    """Six videos in one batch; the annotate-batch process is killed (SIGKILL) once two are annotated. The
    summary (the target) is not written; a plain rerun annotates the other four, leaves the first two as
    they were, takes the aligned faces over from the killed round instead of aligning again, and leaves
    no work folder behind."""
    _, model, videos, _ = model_and_videos
    folder = tmp_path / "videos"
    repeated_video(videos / "first.mp4", tmp_path / "long.mp4", 4)
    for k in range(6):
        folder.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "long.mp4", folder / f"v{k}.mp4")
    work = tmp_path / "work"
    annotations = work / "results" / "annotations"
    killed: dict[str, int] = {}

    def kill_after_two() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and "ok" not in killed:
            pid = annotate_batch_process(work)
            if pid is not None and list(statuses(annotations).values()).count("ok") >= 2:
                os.kill(pid, signal.SIGKILL)
                killed["ok"] = list(statuses(annotations).values()).count("ok")
            time.sleep(0.002)

    killer = threading.Thread(target=kill_after_two, daemon=True)
    killer.start()
    first = annotate(work, folder, model, batch=6)
    killer.join(timeout=10)
    assert first.returncode != 0 and 2 <= killed.get("ok", 0) < 6, (killed, first.stderr[-2000:])
    assert not (annotations / "summary.tsv").exists()  # onerror prints the counts, never writes the target
    assert "pending" in first.stdout + first.stderr
    done = {v: (annotations / f"{v}.json").stat().st_mtime_ns for v, s in statuses(annotations).items()}

    second = annotate(work, folder, model, batch=6)
    assert second.returncode == 0, second.stderr[-3000:]
    assert statuses(annotations) == {f"v{k}": "ok" for k in range(6)}
    assert {r["status"] for r in read_table(annotations / "summary.tsv")} == {"ok"}
    for video, mtime in done.items():  # what the killed batch finished is not redone
        assert (annotations / f"{video}.json").stat().st_mtime_ns == mtime, video
    align_logs = "".join(p.read_text() for p in (work / "logs" / "annotate" / "align").glob("*.log"))
    assert align_logs.count(": reused") == 6 - len(done) and align_logs.count(": aligned") == 6
    assert not (annotations / "work").exists() or not any((annotations / "work").iterdir())
    for k in range(6):
        assert len(read_table(annotations / f"v{k}.csv")) == decoded_frames(folder / f"v{k}.mp4")


def test_a_replaced_video_or_a_removed_outcome_is_annotated_again(model_and_videos, tmp_path):  # noqa: F811
    _, model, videos, _ = model_and_videos
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(videos / "first.mp4", folder / "v1.mp4")
    shutil.copy(videos / "second.mp4", folder / "v2.mp4")
    work = tmp_path / "work"
    annotations = work / "results" / "annotations"
    assert annotate(work, folder, model, batch=2).returncode == 0
    assert len(read_table(annotations / "v1.csv")) == decoded_frames(videos / "first.mp4")
    kept = (annotations / "v2.json").stat().st_mtime_ns

    repeated_video(videos / "first.mp4", tmp_path / "longer.mp4", 3)
    os.replace(tmp_path / "longer.mp4", folder / "v1.mp4")  # the user replaces v1 by a longer video
    result = annotate(work, folder, model, batch=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        len(read_table(annotations / "v1.csv"))
        == decoded_frames(folder / "v1.mp4")
        == 3 * decoded_frames(videos / "first.mp4")
    )
    assert (annotations / "v2.json").stat().st_mtime_ns == kept  # the unchanged video is not redone

    (annotations / "v2.json").unlink()  # a removed outcome is pending again
    result = annotate(work, folder, model, batch=2)
    assert result.returncode == 0 and (annotations / "v2.json").is_file()
    assert len(read_table(annotations / "v2.csv")) == decoded_frames(folder / "v2.mp4")
    result = annotate(work, folder, model, batch=2)
    assert result.returncode == 0 and "annotate_align" not in result.stdout + result.stderr
