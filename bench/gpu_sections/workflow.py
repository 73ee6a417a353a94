"""workflow: `snakemake --cores 4 --configfile config/tiny.yaml --config device=cuda` in a temporary
directory, wall time; only where snakemake and the extension affectflow._native are importable
(checked in a subprocess, never imported here), and only with enough of --budget-s left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

from affectflow.contracts import RUN_FILE, cnn_dir, rnn_dir
from affectflow.testing.processes import ProcessGroupTimeout, run_process_group

REPO = Path(__file__).resolve().parents[2]
NAME = "workflow"
HEADING = None  # printed by run, with the time it may take
MIN_S = 60.0  # run it only with this much of the budget left


def run(bench) -> str:
    args = bench.args
    if args.skip_workflow:
        return "skipped: --skip-workflow"
    left = args.budget_s - bench.elapsed() - 15.0
    ok, reason = availability()
    if not ok:
        return f"skipped: {reason}"
    if left < MIN_S:
        return f"skipped: only {left:.0f} s of the --budget-s left"
    timeout = min(left, args.workflow_timeout)
    print(f"Workflow (tiny config, up to {timeout:.0f} s):", flush=True)
    w = bench.result["workflow"] = run_workflow(bench.device.type, args.workflow_cores, timeout)
    print(f"   {w['wall_s']} s, {'ok' if w['ok'] else 'FAILED'}", flush=True)
    if w["ok"]:
        return "ran"
    return "error: " + ("timed out" if w.get("timed_out") else f"snakemake exit status {w['returncode']}")


def availability() -> tuple[bool, str]:
    """(can run, reason): snakemake and affectflow._native importable, checked without importing them here."""
    if find_spec("snakemake") is None:
        return False, "snakemake is not installed"
    probe = subprocess.run(
        [sys.executable, "-c", "import affectflow._native"], capture_output=True, text=True, env=_env(None), timeout=120
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"the C++ extension affectflow._native is not importable ({last[:200]})"
    return True, ""


def _env(bin_dir: Path | None) -> dict:
    env = dict(os.environ)
    paths = [str(REPO / "src")] + [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    path = [str(Path(sys.executable).parent)] + ([str(bin_dir)] if bin_dir else [])
    env["PATH"] = os.pathsep.join(path + [env.get("PATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_workflow(device_name: str, cores: int, timeout: float) -> dict:
    """The tiny config's whole DAG in a temporary directory, as tests/test_workflow.py runs it."""
    out: dict = {"command": None, "device": device_name, "cores": cores, "timeout_s": round(timeout)}
    with tempfile.TemporaryDirectory(prefix="affectflow-gpu-workflow-") as tmp:
        workdir, bin_dir = Path(tmp) / "work", Path(tmp) / "bin"
        workdir.mkdir()
        bin_dir.mkdir()
        env = _env(bin_dir)
        if shutil.which("affectflow", path=env["PATH"]) is None:
            # Not installed (bare node): the rules call `affectflow ...`; a shim runs the source tree's CLI.
            shim = bin_dir / "affectflow"
            shim.write_text(f"#!{sys.executable}\nimport sys\nfrom affectflow.cli import main\nsys.exit(main())\n")
            shim.chmod(0o755)
            out["affectflow_shim"] = True
        command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
        command += ["--cores", str(cores), "--configfile", str(REPO / "config" / "tiny.yaml")]
        command += ["--config", f"device={device_name}"]
        out["command"] = "snakemake " + " ".join(command[3:])
        started = time.perf_counter()
        try:
            done = run_process_group(command, cwd=workdir, env=env, timeout=timeout, grace=30)
            out["returncode"], log = done.returncode, done.stdout + done.stderr
        except ProcessGroupTimeout as stopped:  # our own process group: snakemake and its jobs, stopped whole
            out["returncode"], out["timed_out"], log = None, True, (stopped.stdout or "") + (stopped.stderr or "")
        out["wall_s"] = round(time.perf_counter() - started, 2)
        out["ok"] = out["returncode"] == 0
        if not out["ok"]:
            out["log_tail"] = (log or "")[-3000:]
        out.update(training_devices(workdir))
    return out


def training_devices(workdir: Path) -> dict:
    """The devices the workflow's training runs recorded in their run.json, and how many runs."""
    runs = {}
    for pattern in (cnn_dir("*", "*"), rnn_dir("*", "*")):
        for run_json in sorted(workdir.glob(f"{pattern}/{RUN_FILE}")):
            try:
                runs[str(run_json.parent.relative_to(workdir))] = json.loads(run_json.read_text()).get("device")
            except Exception:  # noqa: BLE001
                pass
    return {"training_devices": sorted(set(d for d in runs.values() if d)), "training_runs": len(runs)}


def summary(result: dict) -> None:
    w = result.get("workflow") or {}
    if w.get("wall_s") is not None:
        print(
            f"Workflow (tiny config, --cores {w['cores']}, device={w['device']}): {w['wall_s']} s, "
            f"{'ok' if w['ok'] else 'FAILED' + (' (timed out)' if w.get('timed_out') else '')}"
            f"; training devices {w.get('training_devices')}"
        )
