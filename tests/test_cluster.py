"""The workflow on a real one-node SLURM cluster, through `snakemake --profile profiles/slurm`.

tests/cluster/start.sh starts munged, slurmctld and slurmd (Debian packages, no systemd, no
accounting) with a `cpu` and a `gpu` partition (one fake GPU: GRES backed by /dev/null); the
tiny config runs through the real profile with only the site-specific values a user edits
(partitions, account, the node's size) adapted. Without slurmdbd, job states come from squeue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import test_annotate
from helpers import REPO, decoded_frames, read_table, snakemake, tool_env
from workflow_helpers import finite_numbers_in_tsv

CLUSTER_DIR = REPO / "tests" / "cluster"
SLURM_TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")
GPU_RULES = {"train_cnn", "extract", "train_rnn"}
WORKFLOW_TIMEOUT_S = 900

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _why_no_cluster() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "SKIPPED LOUDLY: the SLURM cluster test needs root (slurmd launches the jobs); run `make test` as root"
    missing = [tool for tool in SLURM_TOOLS if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]
    if missing:
        how = (
            "`make apt` (apt-get install munge slurmctld slurmd slurm-client)"
            if shutil.which("apt-get")
            else "a Debian-like system with apt (none here)"
        )
        return f"SKIPPED LOUDLY: SLURM/munge tools missing ({', '.join(missing)}); install them with {how}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster; yields the environment that talks to it. Daemons stop by PID."""
    reason = _why_no_cluster()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    env = tool_env()
    env["PATH"] = f"{env['PATH']}{os.pathsep}/usr/sbin{os.pathsep}/sbin"
    try:
        started = subprocess.run(
            ["bash", str(CLUSTER_DIR / "start.sh"), str(state)], env=env, capture_output=True, text=True, timeout=120
        )
        if started.returncode == 3:
            pytest.skip(f"SKIPPED LOUDLY: cannot set up the test cluster here: {started.stderr.strip()}")
        assert started.returncode == 0, f"cluster did not start:\n{started.stdout}\n{started.stderr}"
        env["SLURM_CONF"] = str(state / "slurm.conf")
        yield env
    finally:
        subprocess.run(["bash", str(CLUSTER_DIR / "stop.sh"), str(state)], env=env, timeout=60)
        for daemon in ("munged", "slurmctld", "slurmd"):
            assert not (state / f"{daemon}.pid.started").exists(), f"{daemon} was not stopped"


def site_profile(directory: Path, cpus: int, memory_mb: int) -> Path:
    """profiles/slurm/config.yaml with what a user sets for a site: partitions (here `cpu` and
    `gpu`, as in the file), no account, and requests that fit this node (threads, memory)."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["set-resources"]["train_cnn"]["gpu"] == 1
    profile["default-resources"].pop("slurm_account")  # and --slurm-no-account on the command line
    profile["default-resources"]["mem_mb"] = min(profile["default-resources"]["mem_mb"], memory_mb)
    for resources in profile["set-resources"].values():
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], memory_mb)
    profile["set-threads"] = {rule: min(threads, cpus) for rule, threads in profile["set-threads"].items()}
    profile.update(
        {"jobs": 4, "retries": 0, "latency-wait": 5, "keep-going": False, "seconds-between-status-checks": 3}
    )
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def slurm_jobs(env) -> list[dict[str, str]]:
    """Every job the controller knows (MinJobAge keeps finished ones): id, partition, state, comment."""
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%P|%T|%k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    jobs = []
    for line in listed.stdout.splitlines():
        job_id, partition, state, comment = line.split("|", 3)
        jobs.append({"id": job_id, "partition": partition, "state": state, "comment": comment})
    return jobs


def submitted_rules(comment: str) -> set[str]:
    """Rules named by the plugin's job comment: `rule_NAME[_wildcards_...]`, or a group's rules."""
    return {
        rule
        for rule in ("synth_corpus", "align", "train_cnn", "extract", "evaluate", "train_rnn", "tables", "figures")
        if f"rule_{rule}" in comment
    }


def snakemake_through_slurm(env, workdir: Path, profile: Path, *args: str) -> tuple[int, str, str, float]:
    """Snakemake on the workflow through the site profile (squeue for job states: no accounting here);
    (return code, stdout, stderr, seconds). Past WORKFLOW_TIMEOUT_S, or when the test is interrupted,
    Snakemake's process group gets SIGTERM (it cancels its SLURM jobs), then SIGKILL 20 s later; a
    timeout fails the test with the output so far."""
    started = time.monotonic()
    result = snakemake(
        workdir,
        "--profile", profile, "--slurm-status-command", "squeue", "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "5", *args,
        env=env, timeout=WORKFLOW_TIMEOUT_S, grace=20,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def test_tiny_workflow_runs_through_slurm_with_gpu_rules_on_the_gpu_partition(slurm_cluster, tmp_path):
    env = slurm_cluster
    workdir = tmp_path / "work"
    workdir.mkdir()
    profile = site_profile(tmp_path / "profile", cpus=os.cpu_count() or 1, memory_mb=1000)
    before = {job["id"] for job in slurm_jobs(env)}

    returncode, stdout, stderr, elapsed = snakemake_through_slurm(
        env, workdir, profile, "--configfile", str(REPO / "config" / "tiny.yaml")
    )
    assert returncode == 0, f"rc {returncode}\n{stdout[-4000:]}\n{stderr[-6000:]}"

    jobs = [job for job in slurm_jobs(env) if job["id"] not in before]
    assert jobs, "no job went through sbatch"
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    rules_by_partition: dict[str, set[str]] = {}
    for job in jobs:
        rules_by_partition.setdefault(job["partition"], set()).update(submitted_rules(job["comment"]))
    assert rules_by_partition.get("gpu") == GPU_RULES, rules_by_partition
    assert {"synth_corpus", "align", "evaluate", "tables", "figures"} <= rules_by_partition.get("cpu", set()), (
        rules_by_partition
    )
    assert not GPU_RULES & rules_by_partition.get("cpu", set()), rules_by_partition
    # The 4 extractions (AD: 2 train + 1 dev subject; plain: the dev subject) went as one
    # GPU job per CNN run.
    extract_jobs = [job for job in jobs if "rule_extract" in job["comment"]]
    assert len(extract_jobs) == 2, extract_jobs

    for n in range(1, 6):
        finite_numbers_in_tsv(workdir / f"results/tables/table{n}.tsv")
    print(f"SLURM workflow: {len(jobs)} sbatch jobs in {elapsed:.0f} s")


model_and_videos = test_annotate.model_and_videos  # the fixture: a tiny trained model and four videos


def test_annotate_an_archive_through_slurm_in_batches(slurm_cluster, model_and_videos, tmp_path):
    """`snakemake annotate` through the SLURM profile on a sheet of 30 videos, one without a face and one
    missing: one alignment job on the CPU partition and one annotation job on the GPU partition (the
    default batch holds them all), no job failing, both failures listed in the summary."""
    env = slurm_cluster
    _, model, videos, _ = model_and_videos
    entries = {f"clip{k:02d}": str(videos / ("first.mp4" if k % 2 else "second.mp4")) for k in range(28)}
    entries.update({"empty_room": str(videos / "empty room.mp4"), "missing": str(tmp_path / "gone.mp4")})
    sheet = test_annotate.annotate_sheet(tmp_path, entries)
    workdir = tmp_path / "work"
    workdir.mkdir()
    profile = site_profile(tmp_path / "profile", cpus=os.cpu_count() or 1, memory_mb=1000)
    before = {job["id"] for job in slurm_jobs(env)}
    returncode, stdout, stderr, elapsed = snakemake_through_slurm(
        env, workdir, profile, "annotate", "--config", f"annotate={{videos: {sheet}, models: [{model}]}}"
    )
    assert returncode == 0, f"no job should fail: failures are data\n{stderr[-4000:]}"
    jobs = [job for job in slurm_jobs(env) if job["id"] not in before]
    aligns = [job for job in jobs if "rule_annotate_align" in job["comment"]]
    batches = [job for job in jobs if "rule_annotate_batch" in job["comment"]]
    assert len(aligns) == 1 and {job["partition"] for job in aligns} == {"cpu"}, jobs
    assert len(batches) == 1 and {job["partition"] for job in batches} == {"gpu"}, jobs
    assert len(jobs) == 2, jobs  # the summary runs on the submitting node (a local rule)
    out = workdir / "results" / "annotations"
    for name in ("clip00", "clip01"):
        video = videos / ("first.mp4" if name == "clip01" else "second.mp4")
        assert len(read_table(out / f"{name}.csv")) == decoded_frames(video)
    summary = {row["id"]: row for row in read_table(out / "summary.tsv")}
    assert len(summary) == 30
    assert [v for v, row in summary.items() if row["status"] != "ok"] == ["empty_room", "missing"]
    assert "no face" in summary["empty_room"]["error"] and "not found" in summary["missing"]["error"]
    print(
        f"SLURM annotate: 30 videos, {len(jobs)} sbatch jobs ({len(aligns)} CPU, {len(batches)} GPU) in {elapsed:.0f} s"
    )
