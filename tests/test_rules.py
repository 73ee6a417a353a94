"""Rules with one home: the chip size, run.json's named fields, and the mode of every output file."""

from __future__ import annotations

import argparse
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectflow import contracts
from affectflow.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def subcommand(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("size", [8, 12, 50, 514, 1024])
def test_align_refuses_a_chip_size_the_cnn_cannot_take_before_decoding(size, tmp_path, capsys):
    missing_video = tmp_path / "not-even-there.mp4"  # nothing may be opened before the size is refused
    with pytest.raises(SystemExit) as stop:
        main(["align", str(missing_video), "-o", str(tmp_path / "f.h5"), "--chip-size", str(size)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--chip-size" in err and str(size) in err, err
    assert not (tmp_path / "f.h5").exists()


def test_the_chip_size_rule_is_the_schemas_and_the_cnns():
    from affectflow.nets.networks import CNNConfig

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    rule = schema["properties"]["align"]["properties"]["chip_size"]
    assert (rule["minimum"], rule["maximum"]) == contracts.CHIP_SIZE_RANGE
    assert rule["multipleOf"] == contracts.CHIP_SIZE_MULTIPLE
    for size in range(1, 600):
        allowed = contracts.chip_size_problem(size) is None
        try:
            CNNConfig(chip_size=size, channels=(2, 2, 2), fc=2)
            built = True
        except ValueError:
            built = False
        assert allowed == built, size
    assert [s for s in (16, 20, 48, 96, 512) if contracts.chip_size_problem(s)] == []


def test_align_and_train_cnn_default_to_the_same_normalization():
    defaults = {
        command: next(a.default for a in subcommand(command)._actions if "--normalization" in a.option_strings)
        for command in ("align", "train-cnn")
    }
    assert set(defaults.values()) == {contracts.DEFAULT_NORMALIZATION}


@pytest.mark.parametrize("command, fields", [("train-cnn", "CNN_RUN_FIELDS"), ("train-rnn", "RNN_RUN_FIELDS")])
def test_run_json_fields_are_the_commands_own_options(command, fields):
    """run.json is built from named fields: each must be an option of the command (a renamed flag fails
    here, instead of silently changing what --resume compares)."""
    from affectflow.learning import commands as train

    destinations = {a.dest for a in subcommand(command)._actions}
    names = getattr(train, fields)
    assert set(names) <= destinations, set(names) - destinations


def test_resume_compares_only_recorded_fields():
    from affectflow.learning import commands as train
    from affectflow.learning.checkpoints import RESUME_MUST_MATCH

    # the fields both commands record, and those they add beside the command line (affectflow.learning.commands)
    recorded = set(train.CNN_RUN_FIELDS) | set(train.RNN_RUN_FIELDS) | {"train_subjects", "label_shift", "data_path"}
    assert set(RESUME_MUST_MATCH) <= recorded, set(RESUME_MUST_MATCH) - recorded


WRITE_UNDER_UMASK = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
out = Path(sys.argv[1])
import numpy as np
import torch
from affectflow.faces.facefile import FaceTrack, write_faces
from affectflow.modelfile import FaceSettings, PipelineSettings, save_model_file
from affectflow.nets.networks import CNNConfig, FaceCNN, config_dict, weights_sha256
from affectflow.inference.traces import write_trace_csv
n = 3
write_faces(out / "faces.h5", FaceTrack(
    chips=np.zeros((n, 16, 16), np.uint8), normalized=np.zeros((n, 16, 16), np.float16),
    found=np.ones(n, bool), landmarks=np.zeros((n, 5, 2), np.float32),
    transform=np.zeros((n, 2, 3), np.float32), time=np.arange(n) / 25.0))
cnn = FaceCNN(CNNConfig(chip_size=16, channels=(2, 2, 2), fc=2))
settings = PipelineSettings("valence", 0.0, "local-mean", FaceSettings(chip_size=16), weights_sha256(cnn), "test")
save_model_file(out / "model.safetensors", "cnn", config_dict(cnn.config), cnn.state_dict(), settings)
write_trace_csv(out / "table.csv", np.arange(n) / 25.0, {"valence": np.zeros(n)})
"""


@pytest.mark.parametrize("umask, mode", [("022", 0o644), ("027", 0o640), ("002", 0o664)])
def test_outputs_get_the_mode_an_ordinary_open_would(tmp_path, umask, mode):
    result = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_UMASK, str(tmp_path), umask], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("faces.h5", "model.safetensors", "table.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
