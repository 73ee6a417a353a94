"""affectflow predict end to end on real aligned faces of the synthetic corpus (align -> CNN -> RNN -> CSV + PNG)."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from affectflow.cli import main
from affectflow.corpus import open_corpus
from affectflow.video import read_video


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Align a 1+1 subject synthetic corpus, train a tiny CNN and RNN on it."""
    from affectflow.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("predict")
    corpus_dir = synthesize_corpus(root / "corpus", seed=0, subjects=(1, 1, 0), seconds=4.0, fps=25.0,
                                   size=(320, 240), workers=1, progress=False)
    corpus = open_corpus(corpus_dir)
    for recording in corpus.recordings:
        assert main(["align", str(recording.video), "-o", str(root / "faces" / f"{recording.subject}.h5"),
                     "--chip-size", "32", "--threads", "1", "--normalization", "gcn"]) == 0
    assert main(["train-cnn", "--corpus", str(corpus_dir), "--faces-dir", str(root / "faces"), "--variant", "A",
                 "--seed", "0", "--out", str(root / "cnn"), "--epochs", "2", "--channels", "4,8,8", "--fc", "10",
                 "--device", "cpu", "--batch-size", "32", "--normalization", "local-mean"]) == 0
    for recording in corpus.recordings:
        faces = root / "faces" / f"{recording.subject}.h5"
        assert main(["extract", "--model", str(root / "cnn"), "--faces", str(faces),
                     "-o", str(root / "features" / f"{recording.subject}.h5"), "--device", "cpu"]) == 0
    assert main(["train-rnn", "--corpus", str(corpus_dir), "--features-dir", str(root / "features"), "--seed", "0",
                 "--out", str(root / "rnn"), "--window", "10", "--window-stride", "2", "--hidden", "8",
                 "--epochs", "2", "--device", "cpu"]) == 0
    assert main(["train-rnn", "--corpus", str(corpus_dir), "--features-dir", str(root / "features"), "--seed", "0",
                 "--out", str(root / "rnn_arousal"), "--window", "10", "--window-stride", "2", "--hidden", "8",
                 "--epochs", "1", "--device", "cpu", "--dimension", "arousal"]) == 0
    return root, corpus


def test_cnn_run_records_the_alignment_and_normalization_settings(trained):
    root, _ = trained
    run = json.loads((root / "cnn" / "run.json").read_text())
    assert run["faces"]["chip_size"] == 32 and run["faces"]["landmarks"] == 5
    # the CNN normalizes raw chips itself; extraction and predict take this from the run, not the face file
    assert run["normalization"] == "local-mean"
    with h5py.File(root / "features" / "dev_1.h5") as h5:
        assert h5.attrs["normalization"] == "local-mean"


def test_predict_writes_one_row_per_frame_and_a_plot(trained, tmp_path):
    root, corpus = trained
    video = corpus.recording("dev_1").video
    assert main(["predict", str(video), "--model", str(root / "rnn"), "-o", str(tmp_path / "trace.csv"),
                 "--plot", str(tmp_path / "trace.png"), "--device", "cpu"]) == 0
    times, _, _ = read_video(video, gray=True)
    with open(tmp_path / "trace.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["time", "valence"]
    assert len(rows) == len(times)
    np.testing.assert_allclose([float(r["time"]) for r in rows], times, atol=1e-3)
    assert all(np.isfinite(float(r["valence"])) for r in rows)
    png = (tmp_path / "trace.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_predict_valence_and_arousal_columns(trained, tmp_path):
    root, corpus = trained
    video = corpus.recording("dev_1").video
    assert main(["predict", str(video), "--model", str(root / "rnn"), "--model", str(root / "rnn_arousal"),
                 "-o", str(tmp_path / "trace.csv"), "--device", "cpu"]) == 0
    with open(tmp_path / "trace.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["time", "valence", "arousal"] and len(rows) == len(read_video(video, gray=True)[0])
    assert not (tmp_path / "trace.png").exists()


def test_predict_needs_an_rnn_run(trained, tmp_path, capsys):
    root, corpus = trained
    code = main(["predict", str(corpus.recording("dev_1").video), "--model", str(root / "cnn"),
                 "-o", str(tmp_path / "trace.csv")])
    assert code == 2 and "needs an RNN run dir" in capsys.readouterr().err
    assert not (tmp_path / "trace.csv").exists()
