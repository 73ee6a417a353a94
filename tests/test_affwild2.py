"""The Aff-Wild2 layout (ABAW's valence-arousal track): reading it, its checks, labels by frame, and scoring
every validly labelled frame. The corpus is made here from the synthetic corpus's real face videos."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from affectflow import metrics
from affectflow.contracts import AFFWILD2_FRAME_TOLERANCE, MODEL_FILE
from affectflow.data.corpus import open_corpus
from affectflow.data.labels import frame_labels
from affectflow.errors import AffectflowError
from helpers import decoded_frames, read_columns, run_cli, write_video

FRAMES = 60  # per video: 2.4 s at 25 fps
FPS = 25.0
MISSING = -5


def source_frames(synthetic_corpus: Path, subject: str, count: int = FRAMES) -> list[np.ndarray]:
    """The first `count` BGR frames of a synthetic subject's video (real face photographs, warped)."""
    import cv2

    capture = cv2.VideoCapture(str(synthetic_corpus / "recordings_video" / f"{subject}.mp4"))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, f"{subject}: only {len(frames)} frames"
        frames.append(frame)
    capture.release()
    return frames


def label_lines(count: int, seed: int, missing=(), missing_valence=()) -> list[tuple[float, float]]:
    """`count` label lines (valence, arousal) with 3 decimals; -5 on lines `missing` (both) and on the valence
    of lines `missing_valence`."""
    rng = np.random.default_rng(seed)
    t = np.arange(count) / FPS
    valence = np.round(0.6 * np.sin(2 * np.pi * t / 2.0 + rng.uniform(0, 6)), 3)
    arousal = np.round(0.5 * np.cos(2 * np.pi * t / 1.5 + rng.uniform(0, 6)), 3)
    lines = [(float(v), float(a)) for v, a in zip(valence, arousal)]
    for k in missing:
        lines[k] = (MISSING, MISSING)
    for k in missing_valence:
        lines[k] = (MISSING, lines[k][1])
    return lines


def write_labels(path: Path, lines) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{v:g},{a:g}\n" for v, a in lines)
    path.write_text("valence,arousal\n" + text)
    return path


TRAIN = "annotations/VA_Estimation_Challenge/Train_Set"
DEV = "annotations/VA_Estimation_Challenge/Validation_Set"
# subject -> (video relative path, partition, face, label lines written: the video's frame count + this)
SUBJECTS = {
    "1-25-640x480": ("videos/batch1/1-25-640x480.mp4", "train", "best", 0),
    "video7_left": ("videos/batch1/video7.avi", "train", "left", -2),  # two lines short
    "video7_right": ("videos/batch1/video7.avi", "train", "right", +2),  # two lines more
    "118-25-640x480": ("videos/batch2/deep/118-25-640x480.mp4", "dev", "best", -2),
    "clip_9": ("videos/batch2/clip_9.mp4", "test", "best", None),  # from the test list
}
BLANK = slice(45, 53)  # frames of the dev video without a face
SPANS = {  # -5 lines: (both dimensions, valence only)
    "1-25-640x480": (range(10, 20), ()),
    "video7_left": ((), range(40, 45)),
    "video7_right": (range(0, 3), ()),
    "118-25-640x480": (range(30, 40), range(5, 8)),
}


@pytest.fixture(scope="module")
def affwild2(synthetic_corpus, tmp_path_factory) -> Path:
    """A tiny corpus in the Aff-Wild2 layout: four videos in nested folders (one .avi, MJPG, shared by the
    left and right persons' label files), label files with -5 spans, two lines short or long, a test list,
    and an unannotated video that is not a subject."""
    root = tmp_path_factory.mktemp("affwild2") / "Aff-Wild2"
    sources = {
        "videos/batch1/1-25-640x480.mp4": ("train_1", "mp4v"),
        "videos/batch1/video7.avi": ("train_2", "MJPG"),
        "videos/batch2/deep/118-25-640x480.mp4": ("dev_1", "mp4v"),
        "videos/batch2/clip_9.mp4": ("test_1", "mp4v"),
    }
    for relative, (subject, fourcc) in sources.items():
        frames = source_frames(synthetic_corpus, subject)
        if subject == "dev_1":  # a span without a face: its labelled frames are scored all the same
            frames[BLANK] = [np.full_like(frames[0], 128)] * (BLANK.stop - BLANK.start)
        write_video(root / relative, frames, FPS, fourcc=fourcc)
    shutil.copy(root / "videos/batch1/1-25-640x480.mp4", root / "videos/batch2/not-annotated.mp4")
    for seed, (subject, (_, partition, _, extra)) in enumerate(SUBJECTS.items()):
        if partition == "test":
            continue
        both, valence_only = SPANS[subject]
        lines = label_lines(FRAMES + extra, seed, both, valence_only)
        write_labels(root / (TRAIN if partition == "train" else DEV) / f"{subject}.txt", lines)
    (root / "test_set.txt").write_text("# the VA track's test set\nclip_9\n\n")
    return root


def file_lines(path: Path) -> list[tuple[float, float]]:
    """A label file's lines after the header, read here with the csv module (not affectflow's reader)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["valence", "arousal"]
    return [(float(v), float(a)) for v, a in rows[1:]]


# --------------------------------------------------------------------------- reading the layout


def test_list_and_check_accept_the_layout(affwild2):
    test_list = affwild2 / "test_set.txt"
    code, out, err = run_cli("corpus", "list", affwild2, "--test-list", test_list)
    assert code == 0, err
    order = ["1-25-640x480", "video7_left", "video7_right", "118-25-640x480", "clip_9"]  # train, dev, test
    assert out.splitlines() == [f"{s}\t{SUBJECTS[s][1]}\t{affwild2 / SUBJECTS[s][0]}" for s in order]
    code, out, _ = run_cli("corpus", "list", affwild2, "--test-list", test_list, "--partition", "dev")
    assert out.splitlines() == [f"118-25-640x480\tdev\t{affwild2 / SUBJECTS['118-25-640x480'][0]}"]

    corpus = open_corpus(affwild2, test_list)
    assert corpus.layout == "affwild2"
    for subject, (video, partition, face, _) in SUBJECTS.items():
        recording = corpus.recording(subject)
        assert (recording.partition, recording.video, recording.face) == (partition, affwild2 / video, face)
        assert recording.labels_by == "frame"
        folder = TRAIN if partition == "train" else DEV
        expected = (
            {} if partition == "test" else {d: affwild2 / folder / f"{subject}.txt" for d in ("valence", "arousal")}
        )
        assert recording.labels == expected
    assert open_corpus(affwild2).subjects("test") == []  # without the list, no test subjects

    code, out, err = run_cli("corpus", "check", "-q", affwild2, "--test-list", test_list)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"{affwild2}: 5 subjects ok (affwild2 layout)"
    table = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert f"v:{FRAMES - 2} a:{FRAMES - 2}" in table["video7_left"] and f"v:{FRAMES + 2}" in table["video7_right"]


def one_video_corpus(root: Path, affwild2: Path, lines) -> Path:
    """A corpus of one train subject `one` (the first video of `affwild2`) with the given label lines."""
    (root / "videos").mkdir(parents=True)
    shutil.copy(affwild2 / SUBJECTS["1-25-640x480"][0], root / "videos" / "one.mp4")
    write_labels(root / TRAIN / "one.txt", lines)
    return root


def expect_error(argv, *fragments) -> str:
    code, out, err = run_cli(*argv)
    assert code == 2, (out, err)
    line = err.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_a_label_file_ten_lines_short_is_refused(affwild2, tmp_path):
    root = one_video_corpus(tmp_path / "c", affwild2, label_lines(FRAMES - 10, 0))
    label_file = root / TRAIN / "one.txt"
    expect_error(
        ["corpus", "check", "-q", root],
        str(label_file),
        f"{FRAMES - 10} label lines",
        f"decodes {FRAMES} frames",
        f"more than the {AFFWILD2_FRAME_TOLERANCE} allowed",
    )
    write_labels(label_file, label_lines(FRAMES + AFFWILD2_FRAME_TOLERANCE, 0))  # at the tolerance: fine
    code, out, _ = run_cli("corpus", "check", "-q", root)
    assert code == 0 and "1 subjects ok" in out


@pytest.mark.parametrize(
    "text, problem",
    [
        ("arousal,valence\n0.1,0.2\n", "line 1: expected the header 'valence,arousal'"),
        ("valence,arousal\n0.1,0.2\n1.5,0.2\n", "neither in [-1, 1] nor -5 (first: line 3, valence 1.5)"),
        ("valence,arousal\n0.1,-4\n", "line 2, arousal -4"),
        ("valence,arousal\n0.1,0.2\n\n0.1,0.2\n", "line 3: expected two numbers"),
        ("valence,arousal\n0.1;0.2\n", "line 2: expected two numbers"),
    ],
)
def test_malformed_label_files_are_refused(affwild2, tmp_path, text, problem):
    root = one_video_corpus(tmp_path / "c", affwild2, [])
    (root / TRAIN / "one.txt").write_text(text)
    expect_error(["corpus", "check", "-q", root], str(root / TRAIN / "one.txt"), problem)


def test_layout_errors_are_named(affwild2, synthetic_corpus, tmp_path):
    root = one_video_corpus(tmp_path / "c", affwild2, label_lines(FRAMES, 0))
    (root / "videos" / "sub").mkdir()
    shutil.copy(root / "videos" / "one.mp4", root / "videos" / "sub" / "one.avi")
    expect_error(["corpus", "list", root], "two videos named 'one'", "one.mp4", "one.avi")
    (root / "videos" / "sub" / "one.avi").unlink()
    write_labels(root / TRAIN / "two_left.txt", label_lines(FRAMES, 1))
    expect_error(["corpus", "list", root], str(root / TRAIN / "two_left.txt"), "no video 'two'")
    (root / TRAIN / "two_left.txt").unlink()
    (root / "tests.txt").write_text("one\n")
    expect_error(["corpus", "list", root, "--test-list", root / "tests.txt"], "test subject 'one' also has labels")
    with pytest.raises(AffectflowError, match="a test list is for the Aff-Wild2 layout"):
        open_corpus(synthetic_corpus, root / "tests.txt")


# --------------------------------------------------------------------------- labels by frame


def read_label_csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and list(rows[0]) == ["frame", "time", "valence", "arousal"]
    return rows


@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_corpus_labels_gives_every_decoded_frame_its_own_line(affwild2, subject):
    video, partition, _, _ = SUBJECTS[subject]
    code, out, err = run_cli("corpus", "labels", affwild2, subject, "--test-list", affwild2 / "test_set.txt")
    assert code == 0, err
    rows = read_label_csv(out)
    frames = decoded_frames(affwild2 / video)
    assert frames == FRAMES and len(rows) == frames  # one row per decoded frame, whatever the file's length
    assert [int(r["frame"]) for r in rows] == list(range(frames))
    np.testing.assert_allclose([float(r["time"]) for r in rows], np.arange(frames) / FPS, atol=1e-6)
    if partition == "test":
        assert all(r["valence"] == r["arousal"] == "" for r in rows)
        return
    lines = file_lines(affwild2 / (TRAIN if partition == "train" else DEV) / f"{subject}.txt")
    for k, row in enumerate(rows):
        for column, dimension in enumerate(("valence", "arousal")):
            if k >= len(lines) or lines[k][column] == MISSING:
                assert row[dimension] == "", (subject, k, dimension, row)  # -5 and missing lines: no label
            else:
                assert float(row[dimension]) == lines[k][column], (subject, k, dimension, row)
    both, valence_only = SPANS[subject]
    empty = [k for k, r in enumerate(rows) if r["valence"] == ""]
    assert empty == sorted(set(both) | set(valence_only) | set(range(len(lines), frames)))


def test_frame_labels_on_face_file_times(affwild2):
    corpus = open_corpus(affwild2)
    times = np.arange(FRAMES) / FPS  # a face file's times: every decoded frame, found or not
    for subject in ("1-25-640x480", "video7_left", "video7_right", "118-25-640x480"):
        recording = corpus.recording(subject)
        lines = np.array(file_lines(recording.labels["valence"]))
        valence = frame_labels(recording, "valence", times)
        assert valence.dtype == np.float32 and valence.shape == (FRAMES,)
        expected = np.full(FRAMES, np.nan)
        usable = min(len(lines), FRAMES)  # a long file's extra lines label nothing
        expected[:usable] = np.where(lines[:usable, 0] == MISSING, np.nan, lines[:usable, 0])
        np.testing.assert_array_equal(valence, expected.astype(np.float32))
        np.testing.assert_array_equal(recording.frame_labels("valence", times), valence)
        # Labels go by decoded frame: a subset of the frames' times (found faces only) cannot be counted
        with pytest.raises(AffectflowError, match="need the time of every decoded frame"):
            frame_labels(recording, "valence", times[::3])
        # Label shift 0.2 s = 5 frames: frame k takes line k + 5; past the video's last frame, none.
        shifted = frame_labels(recording, "valence", times, 0.2)
        np.testing.assert_array_equal(shifted[:-5], valence[5:])
        assert np.isnan(shifted[-5:]).all()
    left = frame_labels(corpus.recording("video7_left"), "valence", times)
    assert np.isnan(left[40:45]).all() and np.isnan(left[-2:]).all() and np.isfinite(left[:40]).all()
    arousal = frame_labels(corpus.recording("video7_left"), "arousal", times)
    assert np.isfinite(arousal[40:45]).all()  # -5 on valence only


def test_corpus_labels_on_the_avec_layout_is_the_gold_standard_at_frame_times(synthetic_corpus):
    code, out, err = run_cli("corpus", "labels", synthetic_corpus, "train_1")
    assert code == 0, err
    rows = read_label_csv(out)
    recording = open_corpus(synthetic_corpus).recording("train_1")
    assert len(rows) == decoded_frames(recording.video)
    times = np.array([float(r["time"]) for r in rows])
    for dimension in ("valence", "arousal"):
        expected = frame_labels(recording, dimension, times)
        assert np.isfinite(expected).all()
        np.testing.assert_allclose([float(r[dimension]) for r in rows], expected, atol=1e-6)


# --------------------------------------------------------------------------- training and scoring by frame

SHIFT_FRAMES = 3


@pytest.fixture(scope="module")
def scored(affwild2, tmp_path_factory):
    """Real faces aligned from the Aff-Wild2-layout videos, a tiny CNN trained on the train subjects' per-frame
    labels (label shift 3 frames), its features and `affectflow evaluate` on the dev subject."""
    root = tmp_path_factory.mktemp("affwild2-run")
    subjects = ["1-25-640x480", "video7_left", "video7_right", "118-25-640x480"]
    corpus = open_corpus(affwild2)
    faces = {s: root / "faces" / f"{s}.h5" for s in subjects}
    for subject in subjects:
        video = corpus.recording(subject).video
        run_cli("align", video, "-o", faces[subject], "--chip-size", 32, "--threads", 1, "--quiet", check=True)
    run_cli(
        "train-cnn",
        *("--corpus", affwild2, "--faces", *faces.values(), "--variant", "plain", "--seed", 0),
        *("--out", root / "cnn", "--epochs", 1, "--channels", "4,8,8", "--fc", 8, "--device", "cpu"),
        *("--batch-size", 32, "--label-shift", SHIFT_FRAMES / FPS, "--quiet"),
        check=True,
    )
    features = root / "features" / "118-25-640x480.h5"
    model = root / "cnn" / MODEL_FILE
    run_cli(
        "extract", "--model", model, "--faces", faces["118-25-640x480"], "-o", features, "--device", "cpu", check=True
    )
    run_cli(
        "evaluate",
        *("--corpus", affwild2, "--model", model, "--features", features, "--partition", "dev"),
        *("--predictions-dir", root / "predictions", "-o", root / "metrics.json", "--device", "cpu"),
        check=True,
    )
    return root


def test_training_used_the_per_frame_labels(scored, affwild2):
    run = json.loads((scored / "cnn" / "run.json").read_text())
    assert run["train_subjects"] == ["1-25-640x480", "video7_left", "video7_right"]
    assert run["dev_subjects"] == ["118-25-640x480"] and run["label_shift"] == pytest.approx(SHIFT_FRAMES / FPS)
    # the training frames: found faces whose shifted line (k + 3) holds a valid valence
    expected = 0
    for subject in run["train_subjects"]:
        with h5py.File(scored / "faces" / f"{subject}.h5") as h5:
            found = h5["found"][()]
        lines = np.array(file_lines(open_corpus(affwild2).recording(subject).labels["valence"]))[:, 0]
        target = np.full(FRAMES, MISSING, float)
        take = np.arange(FRAMES) + SHIFT_FRAMES < min(len(lines), FRAMES)
        target[take] = lines[np.arange(FRAMES)[take] + SHIFT_FRAMES]
        expected += int((found & (target != MISSING)).sum())
    assert run["train_frames"] == expected


def test_evaluate_scores_exactly_the_validly_labelled_frames(scored, affwild2):
    """One predictions row per decoded frame with a valid label (not -5, not past the short file's end), at
    the frame's time; the prediction of frame k - 3 (the label shift); faceless frames scored too."""
    result = json.loads((scored / "metrics.json").read_text())
    with h5py.File(scored / "features" / "118-25-640x480.h5") as h5:
        times, raw, found = h5["time"][()], h5["prediction"][()], h5["found"][()]
    lines = np.array(file_lines(affwild2 / DEV / "118-25-640x480.txt"))[:, 0]
    assert len(times) == FRAMES and len(lines) == FRAMES - 2
    valid = np.zeros(FRAMES, bool)
    valid[: len(lines)] = lines != MISSING
    assert valid.sum() == FRAMES - 2 - 10 - 3  # the short file, the -5 span and the valence-only -5 lines
    trace = read_columns(scored / "predictions" / "118-25-640x480.csv")
    assert list(trace) == ["time", "prediction", "gold"]
    np.testing.assert_allclose(trace["time"], times[valid], atol=5e-4)
    np.testing.assert_allclose(trace["gold"], lines[: len(lines)][valid[: len(lines)]], atol=1e-6)
    frame = np.flatnonzero(valid)
    expected_pred = raw[np.clip(frame - SHIFT_FRAMES, 0, None)]
    np.testing.assert_allclose(trace["prediction"], expected_pred, atol=1e-6)
    assert result["label_rows"] == result["frames"] == int(valid.sum())
    gold = lines[: len(lines)][valid[: len(lines)]]
    assert result["per_recording"]["118-25-640x480"] == pytest.approx(metrics.scores(expected_pred, gold), abs=1e-5)
    assert result["concatenated"] == pytest.approx(metrics.scores(expected_pred, gold), abs=1e-5)
    assert result["label_shift"] == pytest.approx(SHIFT_FRAMES / FPS)
    # the frames where no face was found are scored too, on their filled predictions
    assert not found[BLANK].any() and valid[BLANK].all()


def test_the_affwild2_config_plans_a_600_subject_corpus(tmp_path):
    """config/affwild2.yaml, edited at corpus.path only, over a placeholder corpus in this layout of 600
    videos (24 of them two-person: NAME_left and NAME_right): it parses, plans one alignment per
    subject, and aligns each person of a two-person video as that person."""
    import yaml

    from affectflow.testing.snakemake_output import job_counts, shell_commands
    from helpers import REPO, snakemake

    root = tmp_path / "corpus"
    header = "valence,arousal\n0.1,0.2\n"
    subjects = []
    for part, count in (("Train_Set", 350), ("Validation_Set", 250)):
        folder = root / "annotations" / "VA_Estimation_Challenge" / part
        folder.mkdir(parents=True)
        for k in range(count):
            name = f"{part[:2].lower()}{k:03d}-30-1280x720"
            video = root / "videos" / f"batch{1 + k % 2}" / f"{name}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            video.touch()
            people = [f"{name}_left", f"{name}_right"] if k % 25 == 0 else [name]
            for subject in people:
                (folder / f"{subject}.txt").write_text(header)
            subjects += people
    config = yaml.safe_load((REPO / "config" / "affwild2.yaml").read_text())
    config["corpus"]["path"] = str(root)
    (tmp_path / "affwild2.yaml").write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    result = snakemake(work, "-n", "-p", "--configfile", str(tmp_path / "affwild2.yaml"), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert job_counts(output)["align"] == len(subjects) == 624
    commands = [line for line in shell_commands(output) if line.startswith("affectflow align ")]
    right = [line for line in commands if "tr000-30-1280x720_right.h5" in line]
    assert len(right) == 1 and "tr000-30-1280x720.mp4" in right[0] and "--face right" in right[0]
    left = [line for line in commands if "tr000-30-1280x720_left.h5" in line]
    assert len(left) == 1 and "--face left" in left[0]
    assert all("--face best" in line for line in commands if "tr001-30-1280x720.h5" in line)
