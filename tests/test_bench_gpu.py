"""bench/gpu.py, the GPU check for a bare CUDA node, and its sections (bench/gpu_sections): the
no-CUDA exit, tiny CPU runs (all sections, a chosen few, a failing one), the modules they import.

Each runs in a subprocess with a clean environment (PYTHONPATH=src only, CUDA hidden) as
it would on a node where nothing from this repository is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from affectflow.contracts import NORMALIZATIONS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu.py"
SECTIONS = ("paper_recipe", "cnn_train", "input_pipeline", "extract", "rnn_train", "rnn_infer", "workflow")


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
    return run_python(tmp_path, str(SCRIPT), *args, timeout=timeout)


def run_python(tmp_path, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
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
    by_method = data["input_pipeline"]["pipeline_ms_by_normalization"]
    assert set(by_method) == set(NORMALIZATIONS) and all(v > 0 for v in by_method.values()), by_method
    assert data["extract"]["host_numpy_frames_per_s"] > 0 and data["extract"]["device_tensor_frames_per_s"] > 0
    assert data["rnn_train"]["windows_per_s"] > 0 and data["rnn_infer"]["windows_per_s"] > 0

    # the figures needed nothing beyond torch and numpy: no extension, no Snakemake, no tqdm/scipy/h5py/cv2
    assert data["modules_beyond_torch_numpy"] == [] and data["forbidden_modules_loaded"] == []
    # the readable table and the part list on stdout
    assert "CNN training, images/s" in result.stdout and "ratio amp on/off" in result.stdout
    assert "workflow        skipped: --skip-workflow" in result.stdout


def test_chosen_sections_run_alone_and_the_others_are_reported_not_run(tmp_path):
    out = tmp_path / "gpu.json"
    result = run_script(tmp_path, "--out", str(out), "--allow-cpu", "--quick", "--sections", "rnn_infer", "extract")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["sections"] == {"extract": "ran", "rnn_infer": "ran"} and data["errors"] == {}
    assert "cnn_train" not in data and "paper_recipe" not in data and data["workflow"] is None
    assert data["extract"]["frames"] == data["settings"]["extract_frames"]
    assert data["extract"]["host_numpy_frames_per_s"] > 0 and data["extract"]["device_tensor_frames_per_s"] > 0
    assert data["rnn_infer"]["windows"] == data["settings"]["rnn_infer_frames"]
    assert data["rnn_infer"]["windows_per_s"] > 0
    assert data["modules_beyond_torch_numpy"] == [] and data["forbidden_modules_loaded"] == []
    assert "cnn_train       not run" in result.stdout and "workflow        not run" in result.stdout


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path):
    out = tmp_path / "gpu.json"
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        "import gpu\n"
        "import gpu_sections.extract\n"
        "def boom(bench):\n"
        "    raise RuntimeError('boom')\n"
        "gpu_sections.extract.run = boom\n"
        f"sys.exit(gpu.main(['--out', {str(out)!r}, '--allow-cpu', '--quick', '--sections', 'extract', 'rnn_infer']))\n"
    )
    result = run_python(tmp_path, "-c", code)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    assert "!! extract failed: RuntimeError: boom" in result.stderr
    data = json.loads(out.read_text())  # written in full, with the error
    assert data["sections"] == {"extract": "error: RuntimeError: boom", "rnn_infer": "ran"}
    assert "RuntimeError: boom" in data["errors"]["extract"] and "partial" not in data
    assert data["rnn_infer"]["windows_per_s"] > 0


def test_the_sections_import_nothing_beyond_torch_numpy_and_affectflow(tmp_path):
    code = (
        "import importlib, sys, numpy, torch\n"
        "before = set(sys.modules)\n"
        f"sys.path.insert(0, {str(SCRIPT.parent)!r})\n"
        "import gpu\n"
        "for name in gpu.SECTIONS:\n"
        "    importlib.import_module('gpu_sections.' + name)\n"
        "print(' '.join(gpu.SECTIONS))\n"
        "added = sorted(m for m in set(sys.modules) - before\n"
        "               if m.split('.')[0] not in sys.stdlib_module_names)\n"
        "print('\\n'.join(added))\n"
    )
    result = run_python(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    sections, *added = result.stdout.splitlines()
    assert tuple(sections.split()) == SECTIONS
    # one module per section, and the package's modules they share
    assert {f"gpu_sections.{name}" for name in SECTIONS} <= set(added)
    assert {
        "affectflow.contracts",
        "affectflow.nets.networks",
        "affectflow.nets.tensors",
        "affectflow.learning.loop",
    } <= set(added)
    assert all(m.startswith(("affectflow", "gpu_sections")) or m == "gpu" for m in added), added
    assert "affectflow._native" not in added
