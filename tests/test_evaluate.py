"""affectflow evaluate: predictions CSVs and METRICS.json against metrics computed directly."""

from __future__ import annotations

import json

import arff
import h5py
import numpy as np
import pytest

from affectflow import metrics
from affectflow.contracts import MODEL_FILE
from affectflow.data.corpus import open_corpus, read_labels
from affectflow.inference.features import CNN_ATTR as FEATURES_CNN_ATTR
from affectflow.testing.faces import write_face_corpus
from helpers import read_columns, run_cli

KEYS = {
    "model",
    "kind",
    "partition",
    "dimension",
    "selection",
    "fill_policy",
    "label_rows",
    "frames",
    "concatenated",
    "per_recording_mean",
    "per_recording",
    "settings",
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A tiny CNN (2 epochs), its features for every subject, and an RNN on them (2 epochs)."""
    root = tmp_path_factory.mktemp("evaluate")
    subjects = write_face_corpus(
        root / "corpus", root / "faces", train=2, dev=2, seconds=6.0, size=32, noise=0.7, seed=1
    )
    run_cli(
        "train-cnn",
        "--corpus",
        root / "corpus",
        "--faces",
        *[root / "faces" / f"{s}.h5" for s in subjects],
        "--variant",
        "plain",
        "--seed",
        0,
        "--out",
        root / "cnn",
        "--epochs",
        2,
        "--channels",
        "4,8,8",
        "--fc",
        12,
        "--device",
        "cpu",
        "--batch-size",
        32,
        "--label-shift",
        0.4,
        check=True,
    )
    for subject in subjects:
        faces, features = root / "faces" / f"{subject}.h5", root / "features" / f"{subject}.h5"
        run_cli(
            "extract",
            "--model",
            root / "cnn" / MODEL_FILE,
            "--faces",
            faces,
            "-o",
            features,
            "--device",
            "cpu",
            check=True,
        )
    run_cli(
        "train-rnn",
        "--corpus",
        root / "corpus",
        "--cnn",
        root / "cnn" / MODEL_FILE,
        "--features",
        *[root / "features" / f"{s}.h5" for s in subjects],
        "--seed",
        0,
        "--out",
        root / "rnn",
        "--window",
        8,
        "--window-stride",
        2,
        "--hidden",
        6,
        "--epochs",
        2,
        "--device",
        "cpu",
        check=True,
    )
    return root


def evaluate(root, kind, tmp_path, features_dir=None):
    out = tmp_path / f"{kind}.json"
    features = [(features_dir or root / "features") / f"{s}.h5" for s in ("dev_1", "dev_2")]
    run_cli(
        "evaluate",
        "--corpus",
        root / "corpus",
        "--model",
        root / kind / MODEL_FILE,
        "--features",
        *features,
        "--partition",
        "dev",
        "--predictions-dir",
        tmp_path / kind,
        "-o",
        out,
        "--device",
        "cpu",
        check=True,
    )
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
        label_times, gold = read_labels(corpus.recording(subject).labels["valence"])
        # Scored at the gold rows (one more than frames, as in AV+EC). Label shift 0.4 s = 10 frames: the
        # prediction of frame t is scored at the row at t + 0.4 s; the rows before 0.4 s hold the first one.
        pred = raw[np.clip(np.arange(len(label_times)) - 10, 0, len(raw) - 1)]
        trace = read_columns(tmp_path / "cnn" / f"{subject}.csv")
        assert list(trace) == ["time", "prediction", "gold"]
        assert len(trace["time"]) == len(label_times) == len(times) + 1
        np.testing.assert_allclose(trace["time"], label_times, atol=5e-4)
        np.testing.assert_allclose(trace["gold"], gold, atol=1e-6)
        np.testing.assert_allclose(trace["prediction"], pred, atol=1e-6)
        for key, value in metrics.scores(pred, gold).items():
            assert result["per_recording"][subject][key] == pytest.approx(value, abs=1e-5)
        preds.append(pred)
        golds.append(gold)
    expected = metrics.scores(np.concatenate(preds), np.concatenate(golds))
    assert result["concatenated"] == pytest.approx(expected, abs=1e-5)
    assert result["per_recording_mean"]["ccc"] == pytest.approx(
        np.mean([result["per_recording"][s]["ccc"] for s in ("dev_1", "dev_2")])
    )
    assert result["label_rows"] == result["frames"] == len(np.concatenate(golds))
    assert result["settings"]["label_shift"] == 0.4


def gold_from_arff(path):
    """(times, values) of an ARFF gold standard, read with liac-arff alone (not affectflow's corpus reader)."""
    with open(path) as fh:
        data = arff.load(fh)
    names = [name for name, _ in data["attributes"]]
    rows = np.array([(row[names.index("frameTime")], row[names.index("GoldStandard")]) for row in data["data"]])
    return rows[:, 0], rows[:, 1]


def formula_scores(pred, gold):
    """RMSE, Pearson CC and CCC with population (1/N) moments, written out from docs/design.md section 1."""
    pred, gold = np.asarray(pred, np.float64), np.asarray(gold, np.float64)
    n = len(pred)
    mean_p, mean_g = pred.sum() / n, gold.sum() / n
    var_p, var_g = ((pred - mean_p) ** 2).sum() / n, ((gold - mean_g) ** 2).sum() / n
    cov = ((pred - mean_p) * (gold - mean_g)).sum() / n
    return {
        "rmse": float(np.sqrt(((pred - gold) ** 2).sum() / n)),
        "cc": float(cov / np.sqrt(var_p * var_g)),
        "ccc": float(2 * cov / (var_p + var_g + (mean_p - mean_g) ** 2)),
    }


def test_rnn_metrics_equal_the_formulas_on_the_arff_gold_standard(pipeline, tmp_path):
    """The RNN run's METRICS.json against RMSE/CC/CCC computed here, on the gold standard read from the
    ARFF files (one value per gold row, at the rows' times) and the predictions CSV's predictions."""
    result = evaluate(pipeline, "rnn", tmp_path)
    assert result["kind"] == "rnn" and KEYS <= set(result)
    preds, golds, expected = [], [], {}
    for subject in ("dev_1", "dev_2"):
        label_times, gold = gold_from_arff(
            pipeline / "corpus" / "ratings_gold_standard" / "valence" / f"{subject}.arff"
        )
        trace = read_columns(tmp_path / "rnn" / f"{subject}.csv")
        assert list(trace) == ["time", "prediction", "gold"]
        assert len(trace["time"]) == len(label_times)  # every gold row scored, none added
        np.testing.assert_allclose(trace["time"], label_times, atol=5e-4)
        np.testing.assert_allclose(trace["gold"], gold, atol=1e-6)
        pred = trace["prediction"]
        assert np.isfinite(pred).all() and np.ptp(pred) > 1e-3  # a varying trace: the scores mean something
        expected[subject] = formula_scores(pred, gold)
        preds.append(pred)
        golds.append(gold)
    for subject, scores in expected.items():
        assert result["per_recording"][subject] == pytest.approx(scores, abs=2e-5), subject
    assert result["concatenated"] == pytest.approx(
        formula_scores(np.concatenate(preds), np.concatenate(golds)), abs=2e-5
    )
    assert result["per_recording_mean"] == pytest.approx(
        {key: np.mean([scores[key] for scores in expected.values()]) for key in ("rmse", "cc", "ccc")}, abs=2e-5
    )
    assert result["label_rows"] == result["frames"] == sum(len(g) for g in golds)


@pytest.mark.parametrize("fps, dropped", [(25.0, slice(50, 70)), (30.0, slice(0, 0)), (30.0, slice(90, 120))])
def test_every_gold_row_is_scored_whatever_the_frame_rate_or_dropped_frames(pipeline, tmp_path, fps, dropped):
    """Feature files whose video ran at another frame rate or lost frames: one scored value per gold row."""
    corpus = open_corpus(pipeline / "corpus")
    features_dir = tmp_path / "features"
    features_dir.mkdir()
    rows = 0
    for subject in ("dev_1", "dev_2"):
        label_times, gold = read_labels(corpus.recording(subject).labels["valence"])
        rows += len(label_times)
        frame_times = np.delete(np.arange(int(label_times[-1] * fps)) / fps, dropped)
        # A perfect CNN: frame t shows what annotators report 0.4 s later (the run's label shift).
        prediction = np.interp(frame_times + 0.4, label_times, gold).astype(np.float32)
        with h5py.File(pipeline / "features" / f"{subject}.h5") as h5:
            made_by = h5.attrs[FEATURES_CNN_ATTR]  # the file stands in for the run's own CNN's features
        with h5py.File(features_dir / f"{subject}.h5", "w") as h5:
            h5.attrs[FEATURES_CNN_ATTR] = made_by
            h5["features"] = np.zeros((len(frame_times), 4), np.float32)
            h5["prediction"], h5["found"], h5["time"] = prediction, np.ones(len(frame_times), bool), frame_times
    result = evaluate(pipeline, "cnn", tmp_path, features_dir)
    assert result["label_rows"] == result["frames"] == rows
    for subject in ("dev_1", "dev_2"):
        label_times, gold = read_labels(corpus.recording(subject).labels["valence"])
        trace = read_columns(tmp_path / "cnn" / f"{subject}.csv")
        np.testing.assert_allclose(trace["time"], label_times, atol=5e-4)
        assert np.isfinite(trace["prediction"]).all()
        # Placed at t + 0.4 s, the perfect prediction meets the gold standard on every row it covers
        # (rows before 0.4 s hold the first prediction; rows in a dropped span hold the last prediction before it;
        # 30 fps frames held onto 40 ms rows lag by less than a frame).
        covered = label_times >= 0.4 + 1 / fps
        if dropped.stop:
            covered &= (label_times < dropped.start / fps + 0.4) | (label_times > dropped.stop / fps + 0.4)
        # the causal hold takes the last frame at or before a row: off by at most the trace's slope over a frame
        held_at_most = np.abs(np.diff(gold)).max() / 0.04 / fps + 1e-4
        np.testing.assert_allclose(trace["prediction"][covered], gold[covered], atol=held_at_most)
        assert result["per_recording"][subject]["cc"] > 0.9  # the held rows of a dropped span cost a little


def evaluate_args(pipeline, tmp_path, model, features):
    return [
        "evaluate",
        "--corpus",
        str(pipeline / "corpus"),
        "--model",
        str(model),
        "--features",
        *features,
        "--predictions-dir",
        str(tmp_path / "p"),
        "-o",
        str(tmp_path / "m.json"),
    ]


def test_not_a_model_is_a_named_error(pipeline, tmp_path):
    dev = [str(pipeline / "features" / "dev_1.h5")]
    code, _, err = run_cli(*evaluate_args(pipeline, tmp_path, tmp_path, dev))
    assert code == 2 and "model file not found" in err
    assert not (tmp_path / "m.json").exists()


def test_features_of_another_cnn_or_partition_are_refused(pipeline, tmp_path):
    import shutil

    other = tmp_path / "dev_1.h5"
    shutil.copy(pipeline / "features" / "dev_1.h5", other)
    with h5py.File(other, "a") as h5:
        h5.attrs[FEATURES_CNN_ATTR] = "0" * 64
    code, _, err = run_cli(*evaluate_args(pipeline, tmp_path, pipeline / "rnn" / MODEL_FILE, [str(other)]))
    assert code == 2 and "different CNN" in err
    train = [str(pipeline / "features" / "train_1.h5")]
    code, _, err = run_cli(*evaluate_args(pipeline, tmp_path, pipeline / "cnn" / MODEL_FILE, train))
    assert code == 2 and "not a dev subject" in err
    assert not (tmp_path / "m.json").exists()
