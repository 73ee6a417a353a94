"""The corpus reader: both layouts, label matching by time, and every bad input as a named error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from affectflow.data.corpus import (
    check,
    labels_for_frames,
    natural_key,
    open_corpus,
    read_labels,
)
from affectflow.errors import AffectflowError
from affectflow.faces.video import read_video
from helpers import flat_frames, run_cli, write_video

HEADER = """@relation GOLDSTANDARD_{dim}

@attribute Instance_name string

@attribute frameTime numeric
@attribute GoldStandard numeric


@data

"""


def write_arff(path: Path, subject: str, times, values, dim: str = "VALENCE") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{subject},{t:.2f},{v:.6f}\n" for t, v in zip(times, values))
    path.write_text(HEADER.format(dim=dim) + rows)
    return path


def hand_corpus(root: Path, subjects=("train_1", "dev_1"), frames: int = 10, fps: float = 25.0) -> Path:
    """A tiny corpus in the real layout, written by hand: 10 frames, 11 label rows from t = 0."""
    for subject in subjects:
        write_video(root / "recordings_video" / f"{subject}.mp4", flat_frames(frames), fps)
        times = np.arange(frames + 1) * 0.04
        for dim in ("valence", "arousal"):
            values = np.linspace(-0.5, 0.5, frames + 1) * (1 if dim == "valence" else -1)
            write_arff(root / "ratings_gold_standard" / dim / f"{subject}.arff", subject, times, values, dim.upper())
    return root


# --------------------------------------------------------------------------- reading


def test_hand_written_real_layout_is_read(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1", "train_10", "train_2", "dev_1", "test_1"))
    for dim in ("valence", "arousal"):  # an unlabeled test subject, as in the AV+EC 2015 release
        (root / "ratings_gold_standard" / dim / "test_1.arff").unlink()
    corpus = open_corpus(root)
    assert corpus.layout == "avec2015"
    assert corpus.subjects() == ["train_1", "train_2", "train_10", "dev_1", "test_1"]
    assert corpus.subjects("train") == ["train_1", "train_2", "train_10"]
    assert corpus.subjects("test") == ["test_1"]
    assert corpus.recording("test_1").labels == {}
    with pytest.raises(AffectflowError, match="test_1 has no valence labels"):
        corpus.recording("test_1").frame_labels("valence", np.zeros(3))
    with pytest.raises(AffectflowError, match="no subject 'train_3'"):
        corpus.recording("train_3")
    rec = corpus.recording("train_2")
    assert rec.partition == "train" and rec.video == root / "recordings_video" / "train_2.mp4"
    times, values = read_labels(rec.labels["valence"])
    assert times.dtype == np.float64 and values.dtype == np.float32
    assert len(times) == 11 and times[0] == 0.0 and values[0] == pytest.approx(-0.5)
    frame_times = np.arange(10) * 0.04
    assert np.allclose(rec.frame_labels("valence", frame_times), values[:10])

    code, out, _ = run_cli("corpus", "list", str(root), "--partition", "train")
    assert code == 0
    assert out.splitlines() == [
        f"{s}\ttrain\t{root / 'recordings_video' / (s + '.mp4')}" for s in ("train_1", "train_2", "train_10")
    ]


def test_natural_order():
    assert sorted(["train_10", "train_2", "train_1"], key=natural_key) == ["train_1", "train_2", "train_10"]


def test_labels_matched_by_time_not_count():
    # 7501 label rows (t = 0..300) against 7500 frames; then drop frames 100-109.
    label_times = np.round(np.arange(7501) * 0.04, 6)
    label_values = np.sin(label_times).astype(np.float32)
    frame_times = np.arange(7500) / 25.0
    matched = labels_for_frames(label_times, label_values, frame_times)
    assert matched.shape == (7500,) and np.array_equal(matched, label_values[:7500])
    dropped = np.delete(frame_times, np.arange(100, 110))
    matched = labels_for_frames(label_times, label_values, dropped)
    assert np.array_equal(matched[100], label_values[110])  # no shift after the gap
    assert np.array_equal(matched, np.delete(label_values[:7500], np.arange(100, 110)))
    # Timestamps between label rows get the interpolated label; a frame far past the labels gets NaN.
    odd = labels_for_frames(label_times, label_values, np.array([0.013, 400.0, 12.0 + 0.015]))
    assert odd[0] == pytest.approx(np.interp(0.013, label_times, label_values), abs=1e-7)
    assert np.isnan(odd[1]) and odd[2] == pytest.approx(np.interp(12.015, label_times, label_values), abs=1e-7)


def test_subjects_sheet(tmp_path):
    videos = tmp_path / "data"
    write_video(videos / "a.mp4", flat_frames(10))
    write_video(videos / "b.mp4", flat_frames(10))
    write_arff(videos / "a_v.arff", "a", np.arange(11) * 0.04, np.zeros(11))
    write_arff(videos / "a_a.arff", "a", np.arange(11) * 0.04, np.zeros(11))
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text(  # as a spreadsheet saves it: a byte-order mark and CRLF line ends
        "\ufeffsubject\tpartition\tvideo\tvalence\tarousal\r\n"
        "alice\ttrain\tdata/a.mp4\tdata/a_v.arff\tdata/a_a.arff\r\n"
        "bob\ttest\tdata/b.mp4\t\t\r\n"
    )
    for root in (tmp_path, sheet):
        corpus = open_corpus(root)
        assert corpus.layout == "sheet"
        assert corpus.subjects() == ["alice", "bob"]
        assert corpus.recording("alice").labels["valence"] == videos / "a_v.arff"
        assert corpus.recording("bob").labels == {}
    reports = check(open_corpus(sheet))
    assert [r.problems for r in reports] == [[], []]
    assert reports[0].frames == 10 and reports[0].label_rows == {"valence": 11, "arousal": 11}


# --------------------------------------------------------------------------- bad input


def expect_cli_error(argv, *fragments) -> str:
    code, out, err = run_cli(*argv)
    assert code == 2, (out, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"affectflow {argv[0]}: error: ")
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_missing_corpus_path(tmp_path):
    expect_cli_error(["corpus", "check", str(tmp_path / "nope")], str(tmp_path / "nope"), "does not exist")
    expect_cli_error(["corpus", "list", str(tmp_path)], str(tmp_path), "not a corpus")


def test_unreadable_and_truncated_video(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",), frames=50)
    video = root / "recordings_video" / "train_1.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # truncated mid-stream
    expect_cli_error(["corpus", "check", "-q", str(root)], str(video))
    video.write_bytes(b"not a video at all" * 100)
    line = expect_cli_error(["corpus", "check", "-q", str(root)], str(video), "unreadable")
    assert "train_1" in line


def test_arff_missing(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",))
    arff = root / "ratings_gold_standard" / "arousal" / "train_1.arff"
    arff.unlink()
    expect_cli_error(["corpus", "list", str(root)], str(arff), "ARFF label file missing")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("@relation x\n@attribute frameTime numeric\n@data\n0,1\n", "malformed ARFF"),
        ("this is not arff\n", "malformed ARFF"),
        (HEADER.format(dim="V") + "train_1,0.00,abc\n", "malformed ARFF"),
        (HEADER.format(dim="V"), "no data rows"),
        (HEADER.format(dim="V") + "train_1,0.00,0.1\ntrain_1,0.00,0.2\n", "not strictly increasing"),
        (HEADER.format(dim="V") + "train_1,0.00,0.1\ntrain_1,0.04,1.5\n", "outside [-1, 1]"),
    ],
)
def test_malformed_arff(tmp_path, text, problem):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",))
    arff = root / "ratings_gold_standard" / "valence" / "train_1.arff"
    arff.write_text(text)
    with pytest.raises(AffectflowError, match=problem.replace("[", r"\[")):
        read_labels(arff)
    expect_cli_error(["corpus", "check", "-q", str(root)], str(arff), problem)


def test_durations_differ(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",), frames=10)
    arff = root / "ratings_gold_standard" / "valence" / "train_1.arff"
    write_arff(arff, "train_1", np.arange(60) * 0.04, np.zeros(60))  # 2.36 s of labels for 0.4 s of video
    line = expect_cli_error(["corpus", "check", "-q", str(root)], str(arff), "lasts 0.40 s")
    assert "differ by 1.96 s" in line
    # Within the tolerance it is fine (the gold standard's last row sits at t = duration).
    write_arff(arff, "train_1", np.arange(30) * 0.04, np.zeros(30))
    code, out, _ = run_cli("corpus", "check", "-q", str(root))
    assert code == 0 and "ok" in out


def test_duplicate_subjects(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",))
    write_video(root / "recordings_video" / "train_1.avi", flat_frames(10))
    expect_cli_error(["corpus", "list", str(root)], "duplicate subject name 'train_1'")
    write_video(tmp_path / "a.mp4", flat_frames(10))
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text("subject\tpartition\tvideo\tvalence\tarousal\na\ttest\ta.mp4\t\t\na\ttest\ta.mp4\t\t\n")
    expect_cli_error(["corpus", "list", str(sheet)], str(sheet), "line 3", "duplicate subject name 'a'")


def test_sheet_missing_columns(tmp_path):
    sheet = tmp_path / "subjects.tsv"
    sheet.write_text("subject\tvideo\tvalence\na\ta.mp4\tv.arff\n")
    expect_cli_error(["corpus", "list", str(tmp_path)], str(sheet), "lacks column(s) partition, arousal")


def test_labels_without_video(tmp_path):
    root = hand_corpus(tmp_path / "c", subjects=("train_1",))
    orphan = write_arff(root / "ratings_gold_standard" / "valence" / "dev_4.arff", "dev_4", [0.0], [0.0])
    expect_cli_error(["corpus", "list", str(root)], str(orphan), "no video")


def test_check_cli_subprocess_exit_code(tmp_path):
    # The real entry point: a named error on stderr, exit status 2, no traceback.
    root = hand_corpus(tmp_path / "c", subjects=("train_1",))
    (root / "ratings_gold_standard" / "valence" / "train_1.arff").write_text("garbage\n")
    result = subprocess.run(
        [sys.executable, "-m", "affectflow.cli", "corpus", "check", "-q", str(root)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train_1.arff: malformed ARFF" in result.stderr
    assert "train_1" in result.stdout  # the per-subject table still shows what was found


@pytest.mark.parametrize(
    "row, fragments",
    [
        ("a\tholdout\ta.mp4\tv.arff\tv.arff", ("line 2", "partition 'holdout'")),
        ("a\ttrain\tmissing.mp4\tv.arff\tv.arff", ("missing.mp4", "video of subject a not found")),
        ("a\ttrain\ta.mp4\t\tv.arff", ("line 2", "train subject a has no valence label file")),
        ("a\tdev\ta.mp4\tv.arff\tgone.arff", ("gone.arff", "ARFF label file missing")),
        ("\ttrain\ta.mp4\tv.arff\tv.arff", ("line 2", "empty subject name")),
    ],
)
def test_sheet_bad_rows(tmp_path, row, fragments):
    write_video(tmp_path / "a.mp4", flat_frames(10))
    write_arff(tmp_path / "v.arff", "a", np.arange(11) * 0.04, np.zeros(11))
    (tmp_path / "subjects.tsv").write_text("subject\tpartition\tvideo\tvalence\tarousal\n" + row + "\n")
    expect_cli_error(["corpus", "list", str(tmp_path)], *fragments)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to drop frames")
def test_dropped_frames_keep_labels_aligned(tmp_path):
    """A video that lost frames 20-29 (timestamps kept) still gets each frame's own label."""
    root = hand_corpus(tmp_path / "c", subjects=("train_1",), frames=50)
    video = root / "recordings_video" / "train_1.mp4"
    dropped = tmp_path / "dropped.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(video),
            "-vf",
            r"select='not(between(n\,20\,29))'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "mpeg4",
            "-q:v",
            "2",
            str(dropped),
        ],
        check=True,
    )
    dropped.replace(video)
    arff = root / "ratings_gold_standard" / "valence" / "train_1.arff"
    write_arff(arff, "train_1", np.arange(51) * 0.04, np.arange(51) / 100)  # label = frame index / 100
    times, frames, _ = read_video(video, gray=True)
    assert len(times) == 40
    labels = open_corpus(root).recording("train_1").frame_labels("valence", times)
    expected = np.r_[np.arange(20), np.arange(30, 50)] / 100
    assert np.allclose(labels, expected)  # counting frames would give 0.20 for the frame at t = 1.2 s
    code, out, _ = run_cli("corpus", "check", "-q", str(root))
    assert code == 0 and "40" in out
