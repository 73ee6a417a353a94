"""A command in a process group of its own, stopped whole on a timeout or an interruption: how the tests and
the benchmarks run Snakemake (no job or child outlives them)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


class ProcessGroupTimeout(subprocess.TimeoutExpired):
    """A command that ran past its timeout (its whole process group was stopped); shows its output's end."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}; its process group was stopped.\n"
            f"--- stdout (end) ---\n{(self.stdout or '')[-3000:]}\n--- stderr (end) ---\n{(self.stderr or '')[-5000:]}"
        )


def _stop_group(process: subprocess.Popen, grace: float) -> tuple[str, str]:
    """SIGTERM to the process's whole group, SIGKILL to what is left after `grace` seconds; its output."""
    stdout = stderr = ""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            stdout, stderr = process.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
        except BaseException:  # interrupted again, or the pipes already gone: take the group down, keep going
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            break
    if process.poll() is None:
        process.kill()
        process.wait()
    return stdout or "", stderr or ""


def run_process_group(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout: float, grace: float = 10.0
) -> subprocess.CompletedProcess:
    """Run `command` in a session (process group) of its own and capture its output as text. On a timeout,
    or when the test is interrupted (Ctrl-C, pytest's timeout), the whole group is stopped (SIGTERM, then
    SIGKILL after `grace` seconds): no Snakemake job or child outlives the test. A timeout raises
    ProcessGroupTimeout (a subprocess.TimeoutExpired) with the output so far."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop_group(process, grace)
        raise ProcessGroupTimeout(command, timeout, stdout, stderr) from None
    except BaseException:
        _stop_group(process, grace)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
