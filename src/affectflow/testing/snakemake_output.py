"""Reading what Snakemake prints, for the workflow tests and bench/annotate.py."""

from __future__ import annotations

import re


def job_counts(output: str) -> dict[str, int]:
    """The first 'job count' table Snakemake prints (dry run or real run), without the total."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if re.match(r"^job\s+count\s*$", line))
    except StopIteration:
        raise AssertionError(f"no job table in Snakemake's output:\n{output[-3000:]}") from None
    for line in lines[start + 2 :]:
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line)
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def shell_commands(output: str) -> list[str]:
    """The shell commands a `snakemake -p` run prints (rules without one left out)."""
    prefix = "Shell command: "
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix) and line != prefix + "None"]
