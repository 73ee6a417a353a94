"""affectflow predict end to end on real aligned faces of the synthetic corpus (align -> CNN -> RNN -> CSV + PNG),
from a self-contained model file, through the inference path evaluate takes."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest

from affectflow.cli import main
from affectflow.video import read_video
from tiny_models import aligned_corpus, train_tiny_models


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Align a 1+1 subject synthetic corpus, train a tiny CNN (variant A) and a valence and an arousal RNN."""
    root = tmp_path_factory.mktemp("predict")
    corpus, faces = aligned_corpus(root, seed=0, seconds=4.0)
    train_tiny_models(
        root, corpus, faces, variant="A", fc=10, hidden=8, cnn_epochs=2, rnn_epochs={"valence": 2, "arousal": 1}
    )
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
    assert (
        main(
            [
                "predict",
                str(video),
                "--model",
                str(root / "rnn"),
                "-o",
                str(tmp_path / "trace.csv"),
                "--plot",
                str(tmp_path / "trace.png"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
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
    assert (
        main(
            [
                "predict",
                str(video),
                "--model",
                str(root / "rnn"),
                "--model",
                str(root / "rnn_arousal"),
                "-o",
                str(tmp_path / "trace.csv"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with open(tmp_path / "trace.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["time", "valence", "arousal"] and len(rows) == len(read_video(video, gray=True)[0])
    assert not (tmp_path / "trace.png").exists()


def read_trace(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_predict_after_copying_the_model_file_alone(trained, tmp_path):
    """An RNN model file carries its CNN and every setting: with the run dirs, features and faces moved
    away, a copy of model.pt in an empty folder predicts the same trace."""
    root, corpus = trained
    video = corpus.recording("dev_1").video
    assert (
        main(
            [
                "predict",
                str(video),
                "--model",
                str(root / "rnn" / "model.pt"),
                "-o",
                str(tmp_path / "a.csv"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(root / "rnn" / "model.pt", elsewhere / "model.pt")
    moved = [root / name for name in ("cnn", "rnn", "features", "faces")]
    for path in moved:
        path.rename(path.with_name(path.name + ".away"))
    try:
        assert (
            main(
                [
                    "predict",
                    str(video),
                    "--model",
                    str(elsewhere / "model.pt"),
                    "-o",
                    str(tmp_path / "b.csv"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    finally:
        for path in moved:
            path.with_name(path.name + ".away").rename(path)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


@pytest.mark.parametrize("kind", ["rnn", "cnn"])
def test_predict_equals_evaluate_on_a_dev_video(trained, tmp_path, kind):
    """predict (video -> align -> model file) and evaluate (the workflow's face and feature files -> the same
    model file) give the same per-frame predictions: one inference path."""
    root, corpus = trained
    video = corpus.recording("dev_1").video
    assert (
        main(
            [
                "predict",
                str(video),
                "--model",
                str(root / kind / "model.pt"),
                "-o",
                str(tmp_path / "p.csv"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--corpus",
                str(root / "corpus"),
                "--model",
                str(root / kind / "model.pt"),
                "--features",
                str(root / "features" / "dev_1.h5"),
                "--partition",
                "dev",
                "--predictions-dir",
                str(tmp_path / "e"),
                "-o",
                str(tmp_path / "m.json"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    predicted, evaluated = read_trace(tmp_path / "p.csv"), read_trace(tmp_path / "e" / "dev_1.csv")
    # evaluate scores the gold rows (one every 40 ms from t = 0, like the 25 fps frames, plus one at the end)
    frames = len(predicted["time"])
    np.testing.assert_allclose(evaluated["time"][:frames], predicted["time"], atol=1e-3)
    np.testing.assert_allclose(evaluated["prediction"][:frames], predicted["valence"], atol=1e-5)
    assert np.ptp(predicted["valence"]) > 1e-4  # not a constant trace that would match anything


def test_predict_with_a_cnn_model_file(trained, tmp_path):
    root, corpus = trained
    video = corpus.recording("dev_1").video
    assert (
        main(
            ["predict", str(video), "--model", str(root / "cnn"), "-o", str(tmp_path / "trace.csv"), "--device", "cpu"]
        )
        == 0
    )
    assert list(read_trace(tmp_path / "trace.csv")) == ["time", "valence"]


def test_an_older_model_file_is_a_clear_error(trained, tmp_path, capsys):
    """Model files from before the self-contained format name what they lack."""
    import torch

    root, corpus = trained
    payload = torch.load(root / "rnn" / "model.pt", weights_only=False)
    old = {k: v for k, v in payload.items() if k not in ("format", "pipeline")}
    torch.save(old, tmp_path / "model.pt")
    code = main(
        [
            "predict",
            str(corpus.recording("dev_1").video),
            "--model",
            str(tmp_path / "model.pt"),
            "-o",
            str(tmp_path / "trace.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "older affectflow" in err and "window" in err and "feature_prior" in err
    assert not (tmp_path / "trace.csv").exists()
