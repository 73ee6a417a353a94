"""The synthetic corpus: real layout, read back by the reader, deterministic, faces detectable."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.cli import main
from affectflow.data.corpus import check, open_corpus, read_labels
from affectflow.faces.video import read_video
from affectflow.testing.detection import face_detection_rate


def test_shared_corpus_round_trips(synthetic_corpus, capsys):
    corpus = open_corpus(synthetic_corpus)
    assert corpus.layout == "avec2015"
    assert corpus.subjects() == ["train_1", "train_2", "dev_1", "test_1"]
    assert corpus.subjects("dev") == ["dev_1"]
    test = corpus.recording("test_1")
    assert set(test.labels) == {"valence", "arousal"}  # synthetic test labels are written too
    arff_text = corpus.recording("train_1").labels["valence"].read_text()
    assert arff_text.startswith("@relation GOLDSTANDARD_VALENCE\n\n@attribute Instance_name string\n")
    times, values = read_labels(corpus.recording("train_1").labels["valence"])
    assert len(times) == 201 and times[0] == 0 and times[-1] == pytest.approx(8.0)
    assert np.all(np.abs(values) <= 1) and values.std() > 0.01
    reports = check(corpus)
    for report in reports:
        assert report.problems == []
        assert report.frames == 200 and report.fps == pytest.approx(25.0)
        assert report.label_rows == {"valence": 201, "arousal": 201}
    assert main(["corpus", "check", "-q", str(synthetic_corpus)]) == 0
    out = capsys.readouterr().out
    assert "4 subjects ok" in out


def test_deterministic_per_seed(tmp_path, make_corpus):
    first = make_corpus(tmp_path / "a", seed=3)
    second = make_corpus(tmp_path / "b", seed=3)
    other = make_corpus(tmp_path / "c", seed=4)
    for subject in ("train_1", "dev_1"):
        for dim in ("valence", "arousal"):
            relative = f"ratings_gold_standard/{dim}/{subject}.arff"
            assert (first / relative).read_bytes() == (second / relative).read_bytes()
            assert (first / relative).read_bytes() != (other / relative).read_bytes()
        video = f"recordings_video/{subject}.mp4"
        times_a, frames_a, _ = read_video(first / video)
        times_b, frames_b, _ = read_video(second / video)
        assert np.array_equal(times_a, times_b) and np.array_equal(frames_a, frames_b)
        assert not np.array_equal(frames_a, read_video(other / video)[1])


def test_planned_recordings_are_what_synth_writes(synthetic_corpus):
    """The workflow plans its jobs on planned_recordings before the corpus exists: the files must be those."""
    from affectflow.synth import planned_recordings, read_metadata

    settings, _ = read_metadata(synthetic_corpus)
    planned = planned_recordings(synthetic_corpus, settings.subjects)
    assert planned == open_corpus(synthetic_corpus).recordings
    assert [r.subject for r in planned_recordings("x", (0, 2, 1))] == ["dev_1", "dev_2", "test_1"]


def test_synth_cli_writes_atomically(tmp_path, capsys):
    out = tmp_path / "corpus"
    code = main(
        [
            "corpus",
            "synth",
            "--out",
            str(out),
            "--seed",
            "1",
            "--subjects",
            "1,0,1",
            "--seconds",
            "3",
            "--fps",
            "10",
            "--size",
            "320x240",
            "--workers",
            "1",
            "-q",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no temporary folders left
    corpus = open_corpus(out)
    assert corpus.subjects() == ["train_1", "test_1"]
    times, frames, info = read_video(corpus.recording("test_1").video)
    assert (info.width, info.height, len(frames)) == (320, 240, 30) and info.fps == pytest.approx(10)
    # Bad flags are usage errors (argparse, exit 2), nothing written.
    with pytest.raises(SystemExit) as exit_info:
        main(["corpus", "synth", "--out", str(tmp_path / "x"), "--subjects", "1,2"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "x").exists()
    # A synthetic corpus may be replaced; a folder that is something else is left alone.
    assert (
        main(
            [
                "corpus",
                "synth",
                "--out",
                str(out),
                "--seed",
                "2",
                "--subjects",
                "0,1,0",
                "--seconds",
                "2",
                "--size",
                "320x240",
                "-q",
            ]
        )
        == 0
    )
    assert open_corpus(out).subjects() == ["dev_1"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert main(["corpus", "synth", "--out", str(precious), "--seconds", "2", "-q"]) == 2
    assert "refusing to replace it" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_dlib_finds_the_face(synthetic_corpus):
    """dlib's HOG detector finds the face in >= 95% of sampled frames meant to have one."""
    result = face_detection_rate(synthetic_corpus, every=4)
    assert result.meant > 150
    assert result.rate >= 0.95, str(result)
    assert result.lost > 0 and result.found_in_lost / result.lost <= 0.5, "face-lost spans should hide the face"


def test_labels_lag_the_expression(synthetic_corpus):
    """The ARFF gold standard is the expressed trace delayed by the subject's label delay (1-2 s)."""
    from affectflow.synth import read_metadata, subject_traces

    settings, plans = read_metadata(synthetic_corpus)
    corpus = open_corpus(synthetic_corpus)
    for plan in plans:
        assert 1.0 <= plan.label_delay <= 2.0
        traces = subject_traces(settings, plan)
        times, values = read_labels(corpus.recording(plan.subject).labels["valence"])
        assert np.array_equal(times, traces.label_times)
        assert np.allclose(values, traces.gold["valence"], atol=1e-6)  # what the ARFF holds
        # The face at t shows what the annotators rate at t + delay.
        rated = traces.frame_times + plan.label_delay <= times[-1]
        ahead = np.interp(traces.frame_times[rated] + plan.label_delay, times, values)
        assert np.allclose(ahead, traces.expressed["valence"][rated], atol=1e-3)
        # Frames show the trace plus per-frame jitter: a noisy cue in one frame, a clean one over a window.
        noise = traces.shown["valence"] - traces.expressed["valence"]
        assert 0.2 < noise.std() < 0.4
        assert abs(np.convolve(noise, np.ones(100) / 100, "valid")).max() < 0.15
