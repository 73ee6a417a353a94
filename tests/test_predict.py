"""affectflow predict end to end on real aligned faces of the synthetic corpus (align -> CNN -> RNN -> CSV + PNG),
from a self-contained model file, through the inference path evaluate takes."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from affectflow.cli import main
from affectflow.faces.video import read_video
from helpers import read_columns, read_table
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
    rows = read_table(tmp_path / "trace.csv")
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
    rows = read_table(tmp_path / "trace.csv")
    assert list(rows[0]) == ["time", "valence", "arousal"] and len(rows) == len(read_video(video, gray=True)[0])
    assert not (tmp_path / "trace.png").exists()


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
                str(root / "rnn" / "model.safetensors"),
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
    shutil.copy(root / "rnn" / "model.safetensors", elsewhere / "model.safetensors")
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
                    str(elsewhere / "model.safetensors"),
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
                str(root / kind / "model.safetensors"),
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
                str(root / kind / "model.safetensors"),
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
    predicted, evaluated = read_columns(tmp_path / "p.csv"), read_columns(tmp_path / "e" / "dev_1.csv")
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
    assert list(read_columns(tmp_path / "trace.csv")) == ["time", "valence"]


def test_predict_and_annotate_place_a_shifted_model_alike(trained, tmp_path):
    """A model trained with a label shift of 0.4 s (10 frames): predict (whole video) and annotate (face
    file in chunks) give the same value at every frame, the prediction of the frame 0.4 s earlier, and
    both say so in their JSON."""
    from affectflow.contracts import MODEL_FILE
    from helpers import run_cli

    root, corpus = trained
    shifted = tmp_path / "shifted"
    features = [str(p) for p in sorted((root / "features").glob("*.h5"))]
    run_cli(
        "train-rnn", "--corpus", root / "corpus", "--cnn", root / "cnn" / MODEL_FILE, "--features", *features,
        "--seed", 1, "--out", shifted, "--window", 10, "--hidden", 8, "--epochs", 1, "--label-shift", 0.4,
        "--device", "cpu", "--quiet", check=True,
    )  # fmt: skip
    model = shifted / MODEL_FILE
    video = corpus.recording("dev_1").video
    run_cli("predict", video, "--model", model, "-o", tmp_path / "p.csv", "--device", "cpu", "--quiet", check=True)
    run_cli("align", video, "--like", model, "-o", tmp_path / "f.h5", "--quiet", check=True)
    run_cli("annotate", "--faces", tmp_path / "f.h5", "--model", model, "-o", tmp_path / "a.csv", "--quiet", check=True)
    predicted = read_columns(tmp_path / "p.csv")
    rows = read_table(tmp_path / "a.csv")
    annotated = {key: np.array([float(row[key]) for row in rows]) for key in ("time", "valence")}
    assert len(predicted["time"]) == len(annotated["time"])
    np.testing.assert_allclose(predicted["time"], annotated["time"], atol=1e-3)
    np.testing.assert_allclose(predicted["valence"], annotated["valence"], atol=1e-4)
    # frames before 0.4 s hold the first frame's prediction: the first 11 values are one value
    assert np.ptp(annotated["valence"][:11]) == 0 and np.ptp(annotated["valence"]) > 1e-4
    for summary in (tmp_path / "p.json", tmp_path / "a.json"):
        data = json.loads(summary.read_text())
        assert data["label_shifts"] == [0.4] and "label_shift" in data["time_convention"]
