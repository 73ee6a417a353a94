"""Atomic output: write under a temporary name beside the target, rename on success.

A failed or interrupted writer leaves no partial file under the final name. The final file
gets the mode an ordinary ``open()`` would give it (0666, or 0777 for a folder, less the
umask): ``mkstemp`` creates 0600, which on a cluster's shared project folder would hide every
output from the rest of the group.

A writer killed outright (``kill -9``, a node lost) cannot clean up: its temporary
(``.NAME.partial-XXXX``) stays. The next write of the same target removes it. One writer per
target at a time is assumed, which the workflow guarantees (Snakemake runs one job per output).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``target`` on success.

    ``suffix`` defaults to the target's own suffix so that writers that choose
    a format by extension (OpenCV, matplotlib) still do.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, name = tempfile.mkstemp(
        prefix=_temporary_prefix(target), suffix=target.suffix if suffix is None else suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a whole folder (e.g. a corpus)."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(target: Path) -> str:
    return f".{target.name}.partial-"


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove what an earlier, killed writer of `target` left beside it; returns what was removed."""
    import shutil

    target = Path(target)
    if not target.parent.is_dir():
        return []
    stale = sorted(target.parent.glob(glob.escape(_temporary_prefix(target)) + "*"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale
