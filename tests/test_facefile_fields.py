"""Every reader of a face file checks its layout (affectflow.faces.facefile.structure_problem): one dataset
or attribute of a valid face file changed to a wrong type, shape, length or value (a property test) is
refused by annotate and extract alike, with one line naming the file and the dataset, and nothing is
written. These paths read the file chunk by chunk, where FaceTrack.validate never ran."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affectflow.faces.facefile import SOURCES, FaceTrack, write_faces
from helpers import run_cli
from test_modelfile import cnn_and_rnn

FRAMES = 40


def valid_track() -> FaceTrack:
    rng = np.random.default_rng(0)
    found = np.ones(FRAMES, bool)
    found[5:8] = False
    return FaceTrack(
        chips=rng.integers(0, 255, (FRAMES, 32, 32), dtype=np.uint8),
        normalized=rng.standard_normal((FRAMES, 32, 32)).astype(np.float16),
        found=found,
        landmarks=np.zeros((FRAMES, 5, 2), np.float32),
        transform=np.zeros((FRAMES, 2, 3), np.float32),
        time=np.arange(FRAMES) / 25.0,
        source=np.where(found, 2, 0).astype(np.uint8),
        attrs={"fps": 25.0, "chip_size": 32},
    )


def replace_dataset(h5, name: str, value) -> None:
    del h5[name]
    if isinstance(value, str) and value == "group":
        h5.create_group(name)
    else:
        h5.create_dataset(name, data=value)


def _times_reversed(h5):
    replace_dataset(h5, "time", h5["time"][()][::-1].copy())


def _time_nan(h5):
    time = h5["time"][()]
    time[3] = np.nan
    replace_dataset(h5, "time", time)


EDITS = {
    "chips": [
        lambda h5: replace_dataset(h5, "chips", np.zeros((FRAMES, 32, 32, 1), np.uint8)),
        lambda h5: replace_dataset(h5, "chips", np.zeros((FRAMES - 10, 32, 32), np.uint8)),
        lambda h5: replace_dataset(h5, "chips", np.zeros((FRAMES, 32, 32), np.int16)),
        lambda h5: replace_dataset(h5, "chips", np.zeros((FRAMES, 32, 32), np.float32)),
        lambda h5: replace_dataset(h5, "chips", np.zeros((FRAMES, 32, 24), np.uint8)),
        lambda h5: replace_dataset(h5, "chips", "group"),
    ],
    "time": [
        lambda h5: replace_dataset(h5, "time", np.arange(FRAMES // 2) / 25.0),
        _times_reversed,
        _time_nan,
        lambda h5: replace_dataset(h5, "time", np.zeros(FRAMES)),
    ],
    "source": [
        lambda h5: replace_dataset(h5, "source", np.full(FRAMES, 9, np.uint8)),
        lambda h5: replace_dataset(h5, "source", np.zeros(FRAMES, np.int64)),
    ],
    "found": [lambda h5: replace_dataset(h5, "found", np.ones(FRAMES + 3, bool))],
    "landmarks": [lambda h5: replace_dataset(h5, "landmarks", np.zeros((FRAMES, 5, 3), np.float32))],
    "fps": [lambda h5: h5.attrs.__setitem__("fps", "abc"), lambda h5: h5.attrs.__setitem__("fps", -25.0)],
}
CASES = [(name, k) for name, edits in EDITS.items() for k in range(len(edits))]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    cnn_and_rnn(root)
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), command=st.sampled_from(["annotate", "extract"]))
def test_one_wrong_dataset_is_refused_by_every_reader(models, tmp_path_factory, case, command):
    name, k = case
    work = tmp_path_factory.mktemp("faces")
    faces = work / "v.h5"
    write_faces(faces, valid_track())
    with h5py.File(faces, "r+") as h5:
        EDITS[name][k](h5)
    out = work / "out"
    args = {
        "annotate": [
            "annotate",
            "--faces",
            faces,
            "--model",
            models / "rnn.safetensors",
            "-o",
            out / "a.csv",
            "--quiet",
        ],
        "extract": ["extract", "--faces", faces, "--model", models / "cnn.safetensors", "-o", out / "x.h5"],
    }[command]
    code, _, err = run_cli(*args, "--device", "cpu")
    assert code == 2, (name, k, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(faces) in lines[0] and name in lines[0], (name, k, err)
    assert not out.exists() or not any(out.iterdir())


def test_the_unedited_face_file_is_annotated(models, tmp_path):
    faces = tmp_path / "v.h5"
    write_faces(faces, valid_track())
    code, _, err = run_cli(
        "annotate", "--faces", faces, "--model", models / "rnn.safetensors", "-o", tmp_path / "a.csv"
    )
    assert code == 0, err
    assert len((tmp_path / "a.csv").read_text().splitlines()) == FRAMES + 1
    assert set(SOURCES) >= {"lost", "tracked"}
