"""Every reader of a model file checks its header's fields (affectflow.modelfile.pipeline_problem): one
field of a valid file changed to a wrong type, range or value (a property test over fields and values)
is refused by predict, annotate and align --like alike, with one line naming the file and the field,
and nothing is written."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_cli
from test_modelfile import cnn_and_rnn

BAD_VALUES = {
    "label_shift": [math.nan, math.inf, -math.inf, 1e9, -61.0, "ten", True, [0.4]],
    "dimension": ["../../etc/x", "", "Valence", 5],
    "normalization": ["evil", 3, ""],
    "window": [0, -5, 10**9, "ten", 2.5, True],
    "feature_norm": ["evil", 1],
    "weights_sha256": ["abc", 7, "0" * 63 + "g"],
    "faces.chip_size": ["abc", 50, 0, -32, 10**9, 32.0, True],
    "faces.landmarks": [6, "five"],
    "faces.detect_every": [0, -3, "7", 2.5],
    "feature_prior": ["x", {"mean": [math.nan] * 12, "std": [1.0] * 12, "frames": 250}, {"mean": [0.0], "std": []}],
}
CASES = [(field, value) for field, values in BAD_VALUES.items() for value in values]


def edited(source: Path, target: Path, field: str, value) -> Path:
    """`source` with one field of its pipeline settings set to `value` (the weights untouched)."""
    data = source.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    pipeline = json.loads(header["__metadata__"]["pipeline"])
    *parents, leaf = field.split(".")
    node = pipeline
    for key in parents:
        node = node[key]
    node[leaf] = value
    header["__metadata__"]["pipeline"] = json.dumps(pipeline)
    text = json.dumps(header).encode()
    target.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    return target


@pytest.fixture(scope="module")
def rnn_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    cnn_and_rnn(root)
    return root / "rnn.safetensors"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), command=st.sampled_from(["predict", "annotate", "align --like"]))
def test_one_wrong_field_is_refused_by_every_reader(rnn_file, tmp_path_factory, case, command):
    field, value = case
    work = tmp_path_factory.mktemp("edit")
    model = edited(rnn_file, work / "model.safetensors", field, value)
    (work / "v.mp4").write_bytes(b"")
    out = work / "out"
    args = {
        "predict": ["predict", work / "v.mp4", "--model", model, "-o", out / "t.csv", "--device", "cpu"],
        "annotate": ["annotate", "--faces", work / "v.mp4", "--model", model, "-o", out / "a.csv", "--device", "cpu"],
        "align --like": ["align", work / "v.mp4", "--like", model, "-o", out / "f.h5"],
    }[command]
    code, _, err = run_cli(*args)
    assert code == 2, (field, value, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(model) in lines[0] and field.split(".")[0] in lines[0], (field, value, err)
    assert not out.exists() or not any(out.iterdir())


def test_the_unedited_file_passes_the_same_check(rnn_file):
    from affectflow.modelfile import read_settings

    assert read_settings(rnn_file).settings.window == 10
