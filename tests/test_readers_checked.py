"""Readers that check what they read (issue 24): a training checkpoint edited one field at a time is refused on
--resume with one line (no traceback, no model written); --label-shift, --dimension and a run folder that is
a file are refused with one line; an Aff-Wild2 label line that Python's float() would take ('0_1', 'nan')
is not a number."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affectflow.modelfile import load_checkpoint, save_checkpoint
from test_train import face_corpus, train_cnn  # noqa: F401  (the 2 train + 1 dev face corpus)

TINY = ["--variant", "plain", "--channels", "4,8,8", "--fc", "8", "--batch-size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(face_corpus, tmp_path_factory):  # noqa: F811
    run = tmp_path_factory.mktemp("run")
    assert train_cnn(face_corpus, run, *TINY, "--epochs", "2", "--quiet") == 0
    return load_checkpoint(run / "checkpoint.pt")


EDITS = {
    "no rng": lambda s: s.pop("rng"),
    "run_info as a list": lambda s: s.__setitem__("run_info", [1, 2]),
    "history as a string": lambda s: s.__setitem__("history", "epochs"),
    "epoch 10**9": lambda s: s.__setitem__("epoch", 10**9),
    "epoch -1": lambda s: s.__setitem__("epoch", -1),
    "a misshapen tensor": lambda s: s["model"].__setitem__(
        next(iter(s["model"])), torch.zeros(3, 3, 3, 3, 3, dtype=torch.float32)
    ),
    "a missing tensor": lambda s: s["model"].pop(next(iter(s["model"]))),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_checkpoint_is_one_line_on_resume(face_corpus, checkpoint, tmp_path, capsys, edit):  # noqa: F811
    import copy

    state = copy.deepcopy(checkpoint)
    EDITS[edit](state)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", state)
    capsys.readouterr()
    assert train_cnn(face_corpus, run, *TINY, "--epochs", "3", "--resume", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt" in err[0], err
    assert not (run / "model.safetensors").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e9", "61"])
def test_label_shift_must_be_seconds_within_a_minute(face_corpus, tmp_path, capsys, value):  # noqa: F811
    assert train_cnn(face_corpus, tmp_path / "run", *TINY, "--epochs", "1", f"--label-shift={value}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--label-shift" in err[0] and not (tmp_path / "run" / "model.safetensors").exists()


def test_dimension_is_one_of_the_list(face_corpus, tmp_path, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as stop:
        train_cnn(face_corpus, tmp_path / "run", *TINY, "--dimension", "../../etc/x")
    assert stop.value.code == 2 and "--dimension" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_is_a_file(face_corpus, tmp_path, capsys):  # noqa: F811
    (tmp_path / "run").write_text("a file of the user's\n")
    assert train_cnn(face_corpus, tmp_path / "run", *TINY, "--epochs", "1") == 2
    assert "is a file, not a run folder" in capsys.readouterr().err
    assert (tmp_path / "run").read_text() == "a file of the user's\n"


@pytest.mark.parametrize("cell", ["0_1", "nan", "inf", "1.0.0", "0x1", "½"])
def test_an_affwild2_label_cell_that_is_no_decimal_number_is_refused(tmp_path, cell):
    from affectflow.data.affwild2 import read_label_file
    from affectflow.errors import AffectflowError

    path = tmp_path / "video1.txt"
    path.write_text(f"valence,arousal\n0.1,0.2\n{cell},0.2\n")
    with pytest.raises(AffectflowError, match=r"line 3: expected two numbers"):
        read_label_file(path)
    path.write_text("valence,arousal\n0.1,0.2\n-5,-5\n.5,-1e-1\n")
    values = read_label_file(path)
    assert values.shape == (3, 2) and np.isnan(values[1]).all() and math.isclose(values[2, 1], -0.1, rel_tol=1e-6)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"video\tid\nv\xff1.mp4\tv1\n", "not UTF-8 text"),
        (b"video\tid\nv1.mp4\tv\xe91\n", "not UTF-8 text"),
    ],
)
def test_a_video_sheet_that_is_no_utf8_table_is_one_line(tmp_path, content, problem):
    from helpers import run_cli

    sheet = tmp_path / ("s.tsv" if b"\t" in content else "s.csv")
    sheet.write_bytes(content)
    code, _, err = run_cli("annotate-summary", "--videos", sheet, "--annotations", tmp_path / "ann")
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(sheet) in err and problem in err, err


def test_nan_weights_are_refused_where_the_model_loads(tmp_path):
    from affectflow.errors import AffectflowError
    from affectflow.modelfile import load_model_file, save_model_file
    from affectflow.nets.networks import config_dict, weights_sha256
    from test_modelfile import cnn_and_rnn

    cnn, _ = cnn_and_rnn(tmp_path)
    valid = load_model_file(tmp_path / "cnn.safetensors")
    with torch.no_grad():
        next(iter(cnn.parameters())).fill_(float("nan"))
    settings = valid.settings.__class__(**{**valid.settings.__dict__, "weights_sha256": weights_sha256(cnn)})
    save_model_file(tmp_path / "nan.safetensors", "cnn", config_dict(cnn.config), cnn.state_dict(), settings)
    with pytest.raises(AffectflowError, match=r"nan.safetensors: weight .* holds NaN or inf"):
        load_model_file(tmp_path / "nan.safetensors")


FEATURE_EDITS = {
    "features": [np.zeros((40,), np.float32), np.full((40, 12), np.nan, np.float32), np.zeros((30, 12), np.float32)],
    "prediction": [np.full(40, np.inf, np.float32), np.zeros((40, 2), np.float32)],
    "time": [np.zeros(40), np.arange(40)[::-1] / 25.0],
    "found": [np.ones(41, bool)],
}


@pytest.mark.parametrize("name, k", [(name, k) for name, values in FEATURE_EDITS.items() for k in range(len(values))])
def test_an_edited_feature_file_is_refused_naming_the_dataset(tmp_path, name, k):
    import h5py

    from affectflow.errors import AffectflowError
    from affectflow.inference.features import read_feature_file, write_feature_file

    path = tmp_path / "f.h5"
    rng = np.random.default_rng(0)
    write_feature_file(
        path,
        features=rng.standard_normal((40, 12)).astype(np.float32),
        prediction=np.zeros(40, np.float32),
        found=np.ones(40, bool),
        time=np.arange(40) / 25.0,
        cnn_sha256="0" * 64,
        model="cnn.safetensors",
        subject="s",
        fill_policy="test",
        normalization="local-mean",
    )
    read_feature_file(path)  # valid as written
    with h5py.File(path, "r+") as h5:
        del h5[name]
        h5.create_dataset(name, data=FEATURE_EDITS[name][k])
    with pytest.raises(AffectflowError, match=rf"f\.h5: .*{name}"):
        read_feature_file(path)
