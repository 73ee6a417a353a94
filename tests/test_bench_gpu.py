"""bench/gpu.py, the GPU check for a bare CUDA node: its no-CUDA exit, a tiny CPU run, its imports.

Each runs in a subprocess with a clean environment (PYTHONPATH=src only, CUDA hidden) as
it would on a node where nothing from this repository is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu.py"


def clean_env(tmp_path) -> dict[str, str]:
    home = tmp_path.parent / f"{tmp_path.name}-home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO / "src"),
        "HOME": str(home),
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "LANG": "C.UTF-8",
    }


def run_script(tmp_path, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_cuda_it_exits_2_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu.json"
    result = run_script(tmp_path, "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no CUDA device: "), result.stderr
    assert "--allow-cpu" in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_allow_cpu_quick_runs_every_section_and_writes_the_figures(tmp_path):
    out = tmp_path / "results" / "gpu.json"
    result = run_script(tmp_path, "--out", str(out), "--allow-cpu", "--quick", "--skip-workflow", timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data = json.loads(out.read_text())

    assert data["schema"] == "affectflow-bench-gpu/1" and data["label"] == "CPU"
    for key in (
        "environment",
        "settings",
        "sections",
        "errors",
        "paper_recipe",
        "cnn_train",
        "cnn_train_ratios",
        "input_pipeline",
        "extract",
        "rnn_train",
        "rnn_infer",
        "workflow",
        "peak_memory",
        "modules_loaded",
        "modules_beyond_torch_numpy",
        "forbidden_modules_loaded",
        "total_s",
    ):
        assert key in data, key
    assert data["sections"] == {
        "paper_recipe": "ran",
        "cnn_train": "ran",
        "input_pipeline": "ran",
        "extract": "ran",
        "rnn_train": "ran",
        "rnn_infer": "ran",
        "workflow": "skipped: --skip-workflow",
    }
    assert data["errors"] == {} and data["workflow"] is None and "partial" not in data
    assert data["environment"]["device_type"] == "cpu" and data["environment"]["torch"]

    recipe = data["paper_recipe"]
    assert recipe and all(
        {"lr", "clip_norm", "init_k", "finite", "first_loss_ratio", "last_loss_ratio"} <= set(r) for r in recipe
    )
    combos = {(r["variant"], r["amp"], r["channels_last"]) for r in data["cnn_train"]}
    assert combos == {(v, a, c) for v in ("plain", "AD") for a in (False, True) for c in (False, True)}
    for row in data["cnn_train"]:
        assert row["images_per_s"] > 0 and row["ms_per_step"] > 0 and row["steps"] >= 1, row
    compares = {r["compare"] for r in data["cnn_train_ratios"]}
    assert compares == {"amp on/off", "channels_last on/off", "AD/plain"}
    assert all(r["ratio"] > 0 for r in data["cnn_train_ratios"])

    for variant in ("plain", "AD"):
        share = data["input_pipeline"][variant]
        assert (
            share["pipeline_ms"] > 0
            and share["step_ms"] > 0
            and share["share"] == pytest.approx(share["pipeline_ms"] / share["step_ms"], rel=1e-2)
        )
    assert set(data["input_pipeline"]["pipeline_ms_by_normalization"]) >= {"gcn", "none"}
    assert data["extract"]["host_numpy_frames_per_s"] > 0 and data["extract"]["device_tensor_frames_per_s"] > 0
    assert data["rnn_train"]["windows_per_s"] > 0 and data["rnn_infer"]["windows_per_s"] > 0

    # the figures needed nothing beyond torch and numpy: no extension, no Snakemake, no tqdm/scipy/h5py/cv2
    assert data["modules_beyond_torch_numpy"] == [] and data["forbidden_modules_loaded"] == []
    # the readable table and the part list on stdout
    assert "CNN training, images/s" in result.stdout and "ratio amp on/off" in result.stdout
    assert "workflow        skipped: --skip-workflow" in result.stdout


def test_the_modules_the_gpu_check_uses_import_nothing_beyond_torch_and_numpy(tmp_path):
    code = (
        "import sys, numpy, torch\n"
        "before = set(sys.modules)\n"
        "import affectflow.models, affectflow.trainer, affectflow.augment, affectflow.normalize\n"
        "import affectflow.normalize_torch\n"
        "added = sorted(m for m in set(sys.modules) - before\n"
        "               if m.split('.')[0] not in sys.stdlib_module_names)\n"
        "print('\\n'.join(added))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    added = result.stdout.split()
    assert added and all(m.startswith("affectflow") for m in added), added
    assert "affectflow._native" not in added
