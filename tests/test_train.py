"""train-cnn / train-rnn / extract on small synthetic face files (CPU): learning, resume, shapes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from affectflow.cli import main
from affectflow.data.fill import FILL_POLICY, fill_index
from affectflow.data.label_shift import fit_label_shift
from affectflow.data.labels import shift_predictions
from affectflow.testing.faces import write_face_corpus
from helpers import read_table

# gcn: the fixture's label is the height of a bright bar, i.e. largely the chip's brightness, which local-mean
# (the default, the authors' Normer3) mostly subtracts away
TINY_CNN = ["--channels", "4,8,8", "--fc", "16", "--device", "cpu", "--batch-size", "32", "--normalization", "gcn"]


@pytest.fixture(scope="module")
def face_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    write_face_corpus(root / "corpus", root / "faces", train=2, dev=1, seconds=8.0, size=32, noise=0.7, seed=0)
    return root


def history(run_dir):
    return read_table(run_dir / "history.tsv")


def face_files(face_corpus):
    return [str(p) for p in sorted((face_corpus / "faces").glob("*.h5"))]


def train_cnn(face_corpus, out, *extra):
    return main(
        [
            "train-cnn",
            "--corpus",
            str(face_corpus / "corpus"),
            "--faces",
            *face_files(face_corpus),
            "--seed",
            "0",
            "--out",
            str(out),
            "--quiet",
            *TINY_CNN,
            *extra,
        ]
    )


def feature_files(folder):
    return [str(p) for p in sorted(folder.glob("*.h5"))]


def label_free_cnn_file(path, fc):
    """A CNN model file (untrained, fc units) for RNN tests that write their own feature files."""
    from affectflow.modelfile import FaceSettings, PipelineSettings, save_model_file
    from affectflow.nets.networks import CNNConfig, FaceCNN, config_dict, weights_sha256

    model = FaceCNN(CNNConfig(chip_size=32, channels=(4, 8, 8), fc=fc))
    settings = PipelineSettings(
        dimension="valence",
        label_shift=0.0,
        normalization="local-mean",
        faces=FaceSettings(chip_size=32),
        weights_sha256=weights_sha256(model),
        affectflow_version="test",
    )
    save_model_file(path, "cnn", config_dict(model.config), model.state_dict(), settings)
    return model


def test_fill_policy_holds_last_found_frame_and_never_looks_ahead():
    from affectflow.data.fill import apply_fill

    found = np.array([False, False, True, False, True, True, False])
    assert fill_index(found).tolist() == [-1, -1, 2, 2, 4, 5, 5]
    chips = np.arange(7, dtype=np.uint8)[:, None, None] + np.ones((7, 2, 2), np.uint8)
    filled = apply_fill(chips, found)
    assert filled[:, 0, 0].tolist() == [0, 0, 3, 3, 5, 6, 6]  # blank before the first face
    assert "hold" in FILL_POLICY and "causal" in FILL_POLICY


def test_rnn_input_standardizations():
    from affectflow.nets.rnn_inputs import feature_prior, rnn_inputs

    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 2.0, (4000, 4)).astype(np.float32)
    transductive = rnn_inputs(features, "recording-transductive")
    np.testing.assert_allclose(transductive.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(transductive.std(0), 1, atol=1e-3)
    assert np.array_equal(rnn_inputs(features, "train"), features)
    # causal: starts from the training prior (here an offset one) and converges to the recording's own statistics
    prior = feature_prior([rng.normal(1.5, 1.5, (100, 4))])
    causal = rnn_inputs(features, "causal", prior)
    assert causal[:20].mean() > 0.5  # early frames: the prior dominates
    np.testing.assert_allclose(causal[-1000:].mean(0), 0, atol=0.15)
    np.testing.assert_allclose(causal[-1000:].std(0), 1, atol=0.1)
    with pytest.raises(ValueError):
        rnn_inputs(features, "causal")  # no prior
    with pytest.raises(ValueError):
        rnn_inputs(features, "recording")


@pytest.mark.parametrize("feature_norm,causal", [("causal", True), ("train", True), ("recording-transductive", False)])
def test_prediction_at_t_does_not_depend_on_later_frames(feature_norm, causal):
    """Changing frames after t leaves the predictions up to t unchanged, unless the option says transductive."""
    from affectflow.nets.networks import FrameRNN, RNNConfig
    from affectflow.nets.rnn_inputs import feature_prior, rnn_inputs
    from affectflow.nets.tensors import rnn_window_predictions

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    model = FrameRNN(RNNConfig(input_size=6, hidden=8)).eval()
    prior = feature_prior([rng.normal(0.0, 1.0, (50, 6))])
    features = rng.normal(0.5, 1.0, (120, 6)).astype(np.float32)
    changed = features.copy()
    t = 70
    changed[t + 1 :] += rng.normal(2.0, 3.0, changed[t + 1 :].shape).astype(np.float32)

    def predict(f):
        with torch.no_grad():
            return rnn_window_predictions(model, torch.from_numpy(rnn_inputs(f, feature_norm, prior)), window=30)

    before, after = predict(features), predict(changed)
    assert np.array_equal(before[: t + 1], after[: t + 1]) == causal
    assert not np.allclose(before[t + 1 :], after[t + 1 :])


def test_shift_predictions_moves_frames_later():
    times = np.arange(10) * 0.5
    shifted = shift_predictions(times, np.arange(10, dtype=np.float32), 1.0)
    assert shifted.tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]


def test_tiny_cnn_training_dev_ccc_rises(face_corpus, tmp_path):
    assert train_cnn(face_corpus, tmp_path / "run", "--variant", "plain", "--epochs", "6") == 0
    rows = history(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    ccc = [float(r["dev_ccc"]) for r in rows]
    assert max(ccc[1:]) > ccc[0] + 0.1, ccc
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["best_epoch"] == 1 + int(np.argmax(ccc))
    assert run["architecture"] == {"chip_size": 32, "channels": [4, 8, 8], "fc": 16, "dropout": 0.0, "init": "paper"}
    assert 0.2 <= run["init_k"] <= 1.2 and run["normalization"] == "gcn"
    assert run["fill_policy"] == FILL_POLICY and run["label_shift"] == 0.0
    assert run["train_subjects"] == ["train_1", "train_2"] and run["dev_subjects"] == ["dev_1"]
    for name in ("model.safetensors", "checkpoint.pt", "history.tsv", "run.json"):
        assert (tmp_path / "run" / name).is_file()


def test_kill_and_resume_gives_identical_weights(face_corpus, tmp_path):
    common = ["--variant", "AD", "--epochs", "4", "--frame-stride", "2"]
    assert train_cnn(face_corpus, tmp_path / "whole", *common) == 0
    with pytest.raises(SystemExit):  # the debug flag simulates a kill after epoch 2's checkpoint
        train_cnn(face_corpus, tmp_path / "killed", *common, "--stop-after-epochs", "2")
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    assert len(history(tmp_path / "killed")) == 2
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it from the checkpoint
    assert train_cnn(face_corpus, tmp_path / "killed", *common, "--resume") == 0
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    from safetensors.torch import load_file

    killed = load_file(tmp_path / "killed" / "model.safetensors")
    for key, value in load_file(tmp_path / "whole" / "model.safetensors").items():
        assert torch.equal(value, killed[key])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in history(tmp_path / "whole")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in history(tmp_path / "killed")]


def test_resume_with_other_settings_is_an_error(face_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_cnn(
            face_corpus,
            tmp_path / "run",
            "--variant",
            "plain",
            "--epochs",
            "2",
            "--stop-after-epochs",
            "1",
            "--frame-stride",
            "4",
        )
    code = main(
        [
            "train-cnn",
            "--corpus",
            str(face_corpus / "corpus"),
            "--faces",
            *face_files(face_corpus),
            "--seed",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--channels",
            "4,8,16",
            "--fc",
            "16",
            "--device",
            "cpu",
            "--variant",
            "plain",
            "--epochs",
            "2",
            "--resume",
        ]
    )
    assert code == 2
    assert "different model settings" in capsys.readouterr().err
    code = main(
        [
            "train-cnn",
            "--corpus",
            str(face_corpus / "corpus"),
            "--faces",
            *face_files(face_corpus),
            "--seed",
            "0",
            "--out",
            str(tmp_path / "run"),
            *TINY_CNN,
            "--variant",
            "A",
            "--epochs",
            "2",
            "--frame-stride",
            "4",
            "--resume",
        ]
    )
    assert code == 2
    assert "different variant" in capsys.readouterr().err


def test_validation_selection_holds_out_a_training_subject(face_corpus, tmp_path):
    assert (
        train_cnn(
            face_corpus,
            tmp_path / "run",
            "--variant",
            "D",
            "--epochs",
            "1",
            "--frame-stride",
            "4",
            "--selection",
            "validation",
        )
        == 0
    )
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["train_subjects"] == ["train_1"] and run["validation_subjects"] == ["train_2"]
    assert "val_ccc" in history(tmp_path / "run")[0]


def test_time_budget_stops_after_the_epoch_that_passes_it(face_corpus, tmp_path):
    assert (
        train_cnn(
            face_corpus,
            tmp_path / "run",
            "--variant",
            "A",
            "--epochs",
            "5",
            "--frame-stride",
            "4",
            "--max-minutes",
            "0",
        )
        == 0
    )
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["epochs_run"] == 1 and "time budget" in run["stopped"]
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_label_shift_auto_recovers_the_annotation_delay(tmp_path):
    from affectflow.data.corpus import open_corpus
    from affectflow.data.label_shift import descriptor_from_chips
    from affectflow.learning.recordings import load_faces

    write_face_corpus(
        tmp_path / "c", tmp_path / "f", train=2, dev=0, seconds=20.0, size=24, noise=0.3, delay_s=1.6, seed=3
    )
    corpus = open_corpus(tmp_path / "c")
    train = corpus.subjects("train")
    faces = [load_faces(tmp_path / "f" / f"{s}.h5", s) for s in train]
    result = fit_label_shift(
        [descriptor_from_chips(f.data) for f in faces],
        [f.time for f in faces],
        [corpus.recording(s) for s in train],
        "valence",
        candidates=np.arange(0, 3.01, 0.4),
    )
    assert result["shift"] == pytest.approx(1.6)


def test_extract_and_train_rnn(face_corpus, tmp_path):
    assert train_cnn(face_corpus, tmp_path / "cnn", "--variant", "plain", "--epochs", "1", "--frame-stride", "4") == 0
    for subject in ("train_1", "train_2", "dev_1"):
        faces = face_corpus / "faces" / f"{subject}.h5"
        assert (
            main(
                [
                    "extract",
                    "--model",
                    str(tmp_path / "cnn" / "model.safetensors"),
                    "--faces",
                    str(faces),
                    "-o",
                    str(tmp_path / "features" / f"{subject}.h5"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    with h5py.File(tmp_path / "features" / "dev_1.h5") as h5:
        assert h5["features"].shape == (200, 16) and h5["features"].dtype == np.float32
        assert h5["prediction"].shape == (200,) and h5["found"].shape == (200,) and h5["time"].shape == (200,)
        assert h5.attrs["subject"] == "dev_1"
        assert h5.attrs["model"] == str((tmp_path / "cnn" / "model.safetensors").resolve())
        assert not h5["found"][()].all()  # the fixture loses the face for a while: rows stay
    assert (
        main(
            [
                "train-rnn",
                "--corpus",
                str(face_corpus / "corpus"),
                "--cnn",
                str(tmp_path / "cnn" / "model.safetensors"),
                "--features",
                *feature_files(tmp_path / "features"),
                "--seed",
                "0",
                "--out",
                str(tmp_path / "rnn"),
                "--window",
                "10",
                "--window-stride",
                "3",
                "--hidden",
                "8",
                "--layers",
                "3",
                "--nonlinearity",
                "relu",
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--eval-stride",
                "4",
            ]
        )
        == 0
    )
    run = json.loads((tmp_path / "rnn" / "run.json").read_text())
    assert run["kind"] == "rnn" and run["hidden_sizes"] == [8, 8, 4] and run["feature_norm"] == "causal"
    assert len(run["feature_prior"]["mean"]) == 16 and run["feature_prior"]["frames"] > 0
    assert run["cnn_model"] == str((tmp_path / "cnn" / "model.safetensors").resolve())
    assert len(history(tmp_path / "rnn")) == 2


def test_rnn_window_predictions_strided_and_edge_padded():
    from affectflow.nets.networks import FrameRNN, RNNConfig
    from affectflow.nets.tensors import rnn_window_predictions

    torch.manual_seed(0)
    model = FrameRNN(RNNConfig(input_size=3, hidden=5)).eval()
    features = torch.randn(23, 3)
    with torch.no_grad():
        full = rnn_window_predictions(model, features, window=6, batch_size=4)
        strided = rnn_window_predictions(model, features, window=6, batch_size=4, stride=3)
        padded_first = model(torch.cat([features[:1].expand(5, -1), features[:1]])[None])[0, -1]
        window_at_10 = model(features[5:11][None])[0, -1]
    assert full.shape == (23,)
    np.testing.assert_allclose(strided, full[::3], atol=1e-6)
    assert full[0] == pytest.approx(float(padded_first), abs=1e-6)
    assert full[10] == pytest.approx(float(window_at_10), abs=1e-6)


def test_masked_losses_ignore_missing_labels():
    from affectflow.learning.loop import masked_loss
    from affectflow.metrics import ccc

    pred = torch.tensor([[0.1, 0.5, -0.2], [0.3, 0.0, 0.9]])
    target = torch.tensor([[0.0, float("nan"), -0.1], [0.4, 0.2, float("nan")]])
    keep = torch.isfinite(target)
    assert float(masked_loss(pred, target, "mse")) == pytest.approx(float(((pred - target)[keep] ** 2).mean()))
    assert float(masked_loss(pred, target, "ccc")) == pytest.approx(
        1 - ccc(pred[keep].numpy(), target[keep].numpy()), abs=1e-6
    )


def test_label_shift_option_through_the_cli(tmp_path, capsys):
    write_face_corpus(
        tmp_path / "corpus", tmp_path / "faces", train=2, dev=1, seconds=24.0, size=24, noise=0.3, delay_s=1.6, seed=3
    )
    assert (
        train_cnn(
            tmp_path,
            tmp_path / "run",
            "--variant",
            "plain",
            "--epochs",
            "1",
            "--frame-stride",
            "4",
            "--label-shift",
            "auto",
        )
        == 0
    )
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["label_shift_mode"].startswith("auto") and run["label_shift"] in run["label_shift_fit"]["candidates"]
    assert run["label_shift"] == pytest.approx(1.6, abs=0.4)
    assert train_cnn(tmp_path, tmp_path / "bad", "--variant", "plain", "--label-shift", "soon") == 2
    assert "--label-shift" in capsys.readouterr().err


def test_label_shift_auto_refuses_too_short_recordings(face_corpus, tmp_path, capsys):
    """8 s recordings leave too few frames labelled under every candidate shift up to 6 s: a clear refusal."""
    assert train_cnn(face_corpus, tmp_path / "run", "--variant", "plain", "--epochs", "1", "--label-shift", "auto") == 2
    assert "shift" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def write_label_features(face_corpus, out_dir, rng):
    """Feature files whose unit 0 tracks the label (plus noise) and unit 1 is dead (0) on the training
    subjects but fires on dev: the case of a CNN unit that died in training. They name out_dir/cnn.safetensors
    (an untrained CNN) as their maker, which train-rnn checks."""
    from affectflow.data.corpus import open_corpus
    from affectflow.data.labels import frame_labels
    from affectflow.inference.features import write_feature_file
    from affectflow.nets.networks import weights_sha256

    corpus = open_corpus(face_corpus / "corpus")
    out_dir.mkdir()
    cnn_sha256 = weights_sha256(label_free_cnn_file(out_dir.parent / "cnn.safetensors", fc=8))
    for subject in ("train_1", "train_2", "dev_1"):
        with h5py.File(face_corpus / "faces" / f"{subject}.h5") as h5:
            time, found = h5["time"][()], h5["found"][()]
        label = np.nan_to_num(frame_labels(corpus.recording(subject), "valence", time))
        features = rng.normal(0.0, 1.0, (len(time), 8)).astype(np.float32)
        features[:, 0] = label + 0.3 * features[:, 0]
        features[:, 1] = rng.uniform(0.0, 2.0, len(time)) if subject.startswith("dev") else 0.0
        write_feature_file(
            out_dir / f"{subject}.h5",
            features=features,
            prediction=np.zeros(len(time), np.float32),
            found=found,
            time=time,
            cnn_sha256=cnn_sha256,
            model=str(out_dir.parent / "cnn.safetensors"),
            subject=subject,
            fill_policy="test",
            normalization="local-mean",
        )


@pytest.mark.parametrize("feature_norm", ["causal", "train", "recording-transductive"])
def test_relu_rnn_stays_finite_and_learns_with_a_dead_training_feature(face_corpus, tmp_path, feature_norm):
    write_label_features(face_corpus, tmp_path / "features", np.random.default_rng(0))
    assert (
        main(
            [
                "train-rnn",
                "--corpus",
                str(face_corpus / "corpus"),
                "--cnn",
                str(tmp_path / "cnn.safetensors"),
                "--features",
                *feature_files(tmp_path / "features"),
                "--seed",
                "0",
                "--out",
                str(tmp_path / "rnn"),
                "--window",
                "20",
                "--window-stride",
                "2",
                "--hidden",
                "16",
                "--nonlinearity",
                "relu",
                "--epochs",
                "10",
                "--batch-size",
                "16",
                "--device",
                "cpu",
                "--feature-norm",
                feature_norm,
            ]
        )
        == 0
    )
    rows = history(tmp_path / "rnn")
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("train_loss", "dev_rmse", "dev_ccc"))
    assert float(rows[-1]["train_loss"]) < 0.7 * float(rows[0]["train_loss"])
    assert max(float(r["dev_ccc"]) for r in rows) > 0.3
    # the selected model's dev predictions stay in the labels' range, not 10^4 (the dead unit is ignored)
    assert all(float(r["dev_rmse"]) < 2.0 for r in rows)


def test_rnn_training_windows_include_the_recordings_first_frames(face_corpus, tmp_path):
    """A window of W frames ends at every frame, the first ones edge-padded as at test time: a recording
    shorter than the window still trains (it used to have no full window and failed)."""
    write_label_features(face_corpus, tmp_path / "features", np.random.default_rng(1))
    with h5py.File(tmp_path / "features" / "train_1.h5") as h5:
        frames = len(h5["time"])
    assert (
        main(
            [
                "train-rnn",
                "--corpus",
                str(face_corpus / "corpus"),
                "--cnn",
                str(tmp_path / "cnn.safetensors"),
                "--features",
                *feature_files(tmp_path / "features"),
                "--seed",
                "0",
                "--out",
                str(tmp_path / "rnn"),
                "--window",
                str(frames + 50),
                "--window-stride",
                "20",
                "--hidden",
                "8",
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    rows = history(tmp_path / "rnn")
    assert len(rows) == 2 and all(np.isfinite(float(r["train_loss"])) for r in rows)


def test_a_run_that_learned_nothing_says_so(face_corpus, tmp_path, capsys):
    """lr 0 keeps the initial network: its training loss stays at or above the labels' variance. The
    run still saves (the tables show it) but says so on stderr, once, and in run.json."""
    assert train_cnn(face_corpus, tmp_path / "run", "--variant", "plain", "--epochs", "2", "--lr", "0") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(warnings) == len(run["warnings"]) >= 1 and "variance" in warnings[0]
    assert run["train_loss_to_label_variance"] >= 1.0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    # a run that learned: no warning
    assert train_cnn(face_corpus, tmp_path / "learned", "--variant", "plain", "--epochs", "6") == 0
    assert "warning:" not in capsys.readouterr().err
    assert json.loads((tmp_path / "learned" / "run.json").read_text())["warnings"] == []


def test_a_crafted_checkpoint_is_refused_on_resume_and_runs_nothing(face_corpus, tmp_path, capsys):
    import os

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    (tmp_path / "run").mkdir()
    torch.save({"architecture": RunsCode(), "model": {}}, tmp_path / "run" / "checkpoint.pt")
    assert train_cnn(face_corpus, tmp_path / "run", "--variant", "plain", "--epochs", "2", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt" in err[0] and "refused" in err[0], err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "run" / "model.safetensors").exists()
