"""The model file (affectflow.modelfile): data only, one owner, readable without building a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from affectflow.cli import main
from affectflow.faces.settings import AlignSettings
from affectflow.modelfile import (
    LEGACY_MODEL_FORMAT,
    FaceSettings,
    PipelineSettings,
    load_model_file,
    read_settings,
    save_model_file,
)
from affectflow.nets.networks import CNNConfig, FaceCNN, FrameRNN, RNNConfig, config_dict, weights_sha256


class RunsCode:
    """What a crafted pickle holds: unpickling it calls os.system (what a model file must never do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cnn_and_rnn(tmp_path):
    """A small CNN model file and an RNN model file embedding it (untrained: the format is under test)."""
    torch.manual_seed(3)
    cnn = FaceCNN(CNNConfig(chip_size=32, channels=(4, 8, 8), fc=12))
    faces = FaceSettings(chip_size=32, landmarks=5, landmark_model="shape_predictor_5_face_landmarks", detect_every=7)
    cnn_settings = PipelineSettings(
        dimension="arousal",
        label_shift=0.4,
        normalization="local-mean",
        faces=faces,
        weights_sha256=weights_sha256(cnn),
        affectflow_version="test",
    )
    save_model_file(tmp_path / "cnn.safetensors", "cnn", config_dict(cnn.config), cnn.state_dict(), cnn_settings)
    rnn = FrameRNN(RNNConfig(input_size=12, hidden=6, layers=3))
    prior = {"mean": [0.1] * 12, "std": [1.0] * 12, "frames": 250}
    rnn_settings = replace(
        cnn_settings,
        weights_sha256=weights_sha256(rnn),
        window=10,
        feature_norm="causal",
        feature_prior=prior,
        cnn_sha256=weights_sha256(cnn),
    )
    save_model_file(
        tmp_path / "rnn.safetensors",
        "rnn",
        config_dict(rnn.config),
        rnn.state_dict(),
        rnn_settings,
        extra={"seed": 3},
        cnn=(config_dict(cnn.config), cnn.state_dict()),
    )
    return cnn, rnn


def test_a_model_file_round_trips_its_weights_and_settings(tmp_path):
    from affectflow.inference.pipeline import load_pipeline

    cnn, rnn = cnn_and_rnn(tmp_path)
    loaded = load_pipeline(tmp_path / "rnn.safetensors")
    x = torch.randn(3, 1, 32, 32)
    assert torch.equal(loaded.cnn(x), cnn.eval()(x))
    windows = torch.randn(2, 10, 12)
    assert torch.equal(loaded.rnn(windows), rnn.eval()(windows))
    assert loaded.kind == "rnn" and loaded.dimension == "arousal" and loaded.label_shift == 0.4
    assert loaded.cnn_sha256 == weights_sha256(cnn) and loaded.settings.window == 10
    assert loaded.align_settings() == AlignSettings(landmarks=5, chip_size=32, detect_every=7)
    assert loaded.run_info == {"seed": 3}
    assert load_pipeline(tmp_path / "cnn.safetensors").rnn is None


def test_loading_a_model_leaves_the_global_rng_alone(tmp_path):
    from affectflow.inference.pipeline import load_pipeline

    cnn_and_rnn(tmp_path)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    load_pipeline(tmp_path / "rnn.safetensors")
    assert torch.equal(torch.rand(3), expected)


def test_read_settings_reads_the_header_without_torch(tmp_path):
    cnn_and_rnn(tmp_path)
    script = (
        "import sys\n"
        "from affectflow.modelfile import read_settings\n"
        f"m = read_settings({str(tmp_path / 'rnn.safetensors')!r})\n"
        "print(m.kind, m.settings.faces.chip_size, m.settings.window, m.state_dict is None)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["rnn", "32", "10", "True", "False"]


def test_changed_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    cnn_and_rnn(tmp_path)
    path = tmp_path / "cnn.safetensors"
    header = read_settings(path)
    tensors = load_file(path)
    tensors["model.out.bias"] = tensors["model.out.bias"] + 1.0
    from safetensors import safe_open

    with safe_open(path, "pt") as fh:
        metadata = fh.metadata()
    save_file(tensors, path, metadata=metadata)
    assert read_settings(path).kind == header.kind  # the header alone is intact
    with pytest.raises(Exception, match="do not match their recorded SHA-256"):
        load_model_file(path)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_crafted_pickle_given_as_a_model_runs_nothing(synthetic_corpus, tmp_path, capsys, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save({"kind": "cnn", "payload": RunsCode(marker)}, evil)
    else:
        import pickle

        evil.write_bytes(pickle.dumps(RunsCode(marker)))
    video = next((synthetic_corpus / "recordings_video").glob("dev_*.mp4"))
    code = main(["predict", str(video), "--model", str(evil), "-o", str(tmp_path / "trace.csv"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(evil) in err[0] and "refused" in err[0], err
    assert not marker.exists()
    assert not (tmp_path / "trace.csv").exists()
    # align --like reads a model file's settings: the same refusal
    assert main(["align", str(video), "--like", str(evil), "-o", str(tmp_path / "f.h5"), "--quiet"]) == 2
    assert not marker.exists() and not (tmp_path / "f.h5").exists()


def legacy_payload(tmp_path) -> dict:
    """A model.pt as affectflow-model/2 wrote it (torch.save of a dict), from the same weights."""
    contents = load_model_file(tmp_path / "rnn.safetensors")
    settings = json.loads(json.dumps(contents.settings.__dict__, default=lambda o: o.__dict__))
    cnn_sha256 = settings.pop("cnn_sha256")
    embedded = {"config": contents.cnn_config, "state_dict": contents.cnn_state_dict, "weights_sha256": cnn_sha256}
    settings["cnn"] = embedded
    return {
        "format": LEGACY_MODEL_FORMAT,
        "kind": "rnn",
        "config": contents.config,
        "state_dict": contents.state_dict,
        "pipeline": settings,
        "extra": contents.extra,
    }


def test_a_model_file_of_the_previous_format_still_predicts_alike(tmp_path):
    from affectflow.inference.pipeline import load_pipeline

    cnn_and_rnn(tmp_path)
    torch.save(legacy_payload(tmp_path), tmp_path / "model.pt")
    old, new = load_pipeline(tmp_path / "model.pt"), load_pipeline(tmp_path / "rnn.safetensors")
    chips = np.random.default_rng(0).integers(0, 255, (40, 32, 32), dtype=np.uint8)
    assert np.array_equal(old.predict_chips(chips), new.predict_chips(chips))
    assert old.settings == new.settings


def test_an_older_model_file_or_a_checkpoint_is_one_clear_line(synthetic_corpus, tmp_path, capsys):
    cnn_and_rnn(tmp_path)
    payload = legacy_payload(tmp_path)
    torch.save({k: v for k, v in payload.items() if k not in ("format", "pipeline")}, tmp_path / "v1.pt")
    torch.save({"kind": "cnn", "architecture": {}, "model": {}, "optimizer": {}}, tmp_path / "checkpoint.pt")
    video = next((synthetic_corpus / "recordings_video").glob("dev_*.mp4"))
    for name, expected in [("v1.pt", "re-train it"), ("checkpoint.pt", "is a training checkpoint")]:
        code = main(["predict", str(video), "--model", str(tmp_path / name), "-o", str(tmp_path / "t.csv"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], err
