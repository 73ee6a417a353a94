"""affectflow evaluate: predictions CSVs and METRICS.json against metrics computed directly."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from affectflow import metrics
from affectflow.cli import main
from affectflow.corpus import open_corpus
from affectflow.synthetic_faces import write_face_corpus

KEYS = {"model", "kind", "partition", "dimension", "selection", "fill_policy", "frames", "concatenated",
        "per_recording_mean", "per_recording", "settings"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny CNN (2 epochs), its features for every subject, and an RNN on them (2 epochs)."""
    root = tmp_path_factory.mktemp("evaluate")
    subjects = write_face_corpus(root / "corpus", root / "faces", train=2, dev=2, seconds=6.0, size=32,
                                 noise=0.7, seed=1)
    assert main(["train-cnn", "--corpus", str(root / "corpus"), "--faces-dir", str(root / "faces"),
                 "--variant", "plain",
                 "--seed", "0", "--out", str(root / "cnn"), "--epochs", "2", "--channels", "4,8,8", "--fc", "12",
                 "--device", "cpu", "--batch-size", "32", "--label-shift", "0.4"]) == 0
    for subject in subjects:
        assert main(["extract", "--model", str(root / "cnn"), "--faces", str(root / "faces" / f"{subject}.h5"),
                     "-o", str(root / "features" / f"{subject}.h5"), "--device", "cpu"]) == 0
    assert main(["train-rnn", "--corpus", str(root / "corpus"), "--features-dir", str(root / "features"), "--seed", "0",
                 "--out", str(root / "rnn"), "--window", "8", "--window-stride", "2", "--hidden", "6",
                 "--epochs", "2", "--device", "cpu"]) == 0
    return root


def read_csv(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def evaluate(root, kind, tmp_path):
    out = tmp_path / f"{kind}.json"
    assert main(["evaluate", "--corpus", str(root / "corpus"), "--model", str(root / kind), "--features-dir",
                 str(root / "features"), "--partition", "dev", "--predictions-dir", str(tmp_path / kind),
                 "-o", str(out), "--device", "cpu"]) == 0
    return json.loads(out.read_text())


def test_cnn_metrics_match_direct_computation(pipeline, tmp_path):
    result = evaluate(pipeline, "cnn", tmp_path)
    assert KEYS <= set(result)
    assert result["kind"] == "cnn" and result["partition"] == "dev" and result["dimension"] == "valence"
    assert result["selection"] == "dev" and "hold" in result["fill_policy"]
    corpus = open_corpus(pipeline / "corpus")
    preds, golds = [], []
    for subject in ("dev_1", "dev_2"):
        with h5py.File(pipeline / "features" / f"{subject}.h5") as h5:
            times, raw = h5["time"][()], h5["prediction"][()]
        gold = corpus.recording(subject).frame_labels("valence", times)
        # label shift 0.4 s = 10 frames: the prediction of frame t is scored at t + 0.4 s
        pred = np.concatenate([np.repeat(raw[:1], 10), raw[:-10]])
        trace = read_csv(tmp_path / "cnn" / f"{subject}.csv")
        assert list(trace) == ["time", "prediction", "gold"] and len(trace["time"]) == len(times)
        np.testing.assert_allclose(trace["prediction"], pred, atol=1e-6)
        for key, value in metrics.scores(pred, gold).items():
            assert result["per_recording"][subject][key] == pytest.approx(value, abs=1e-5)
        preds.append(pred)
        golds.append(gold)
    expected = metrics.scores(np.concatenate(preds), np.concatenate(golds))
    assert result["concatenated"] == pytest.approx(expected, abs=1e-5)
    assert result["per_recording_mean"]["ccc"] == pytest.approx(
        np.mean([result["per_recording"][s]["ccc"] for s in ("dev_1", "dev_2")]))
    assert result["frames"] == int(np.isfinite(np.concatenate(golds)).sum())
    assert result["settings"]["label_shift"] == 0.4


def test_rnn_metrics_from_its_csvs(pipeline, tmp_path):
    result = evaluate(pipeline, "rnn", tmp_path)
    assert result["kind"] == "rnn" and KEYS <= set(result)
    preds, golds = [], []
    for subject in ("dev_1", "dev_2"):
        trace = read_csv(tmp_path / "rnn" / f"{subject}.csv")
        assert result["per_recording"][subject]["ccc"] == pytest.approx(
            metrics.ccc(trace["prediction"], trace["gold"]), abs=1e-5)
        preds.append(trace["prediction"])
        golds.append(trace["gold"])
    assert result["concatenated"]["rmse"] == pytest.approx(
        metrics.rmse(np.concatenate(preds), np.concatenate(golds)), abs=1e-5)


def test_not_a_run_dir_is_a_named_error(pipeline, tmp_path, capsys):
    code = main(["evaluate", "--corpus", str(pipeline / "corpus"), "--model", str(tmp_path), "--features-dir",
                 str(pipeline / "features"), "--predictions-dir", str(tmp_path / "p"), "-o", str(tmp_path / "m.json")])
    assert code == 2 and "no run.json" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
