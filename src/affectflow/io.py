"""Atomic output: write under a temporary name beside the target, rename on success.

A failed or interrupted writer leaves no partial file under the final name. The final file
gets the mode an ordinary ``open()`` would give it (0666, or 0777 for a folder, less the
umask): ``mkstemp`` creates 0600, which on a cluster's shared project folder would hide every
output from the rest of the group.

A writer killed outright (``kill -9``, a node lost) cannot clean up: its temporary
(``.NAME.partial-XXXX``) stays. The next write of the same target removes it. One writer per
target at a time is assumed, which the workflow guarantees (Snakemake runs one job per output).

Nothing a user gave is lost to an output. A command's inputs are *protected* (the CLI protects
every path argument that is not an output, commands add what they read from sheets and plans):
no atomic write replaces one, nor a folder that holds one. A folder is replaced only if
affectflow wrote it (its manifest, ``.affectflow-folder``, says so) or it is empty; any other
existing folder is refused, however it was named. Outputs are *claimed* before any work starts,
so that two outputs of one command, or an output and an input, that resolve to the same file
(symlinks, ``..``) are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import fail

FOLDER_MANIFEST = ".affectflow-folder"  # marks a folder affectflow wrote (and may replace)
_protected: dict[str, str] = {}  # resolved path -> this process's input as the user named it
_claimed: dict[str, str] = {}  # resolved path -> the output as the user named it


class OutputPath(type(Path())):
    """A path argument that names an output (use as argparse ``type``): the CLI claims it before the
    command runs; every other path argument is protected as an input."""


def resolved(path: str | os.PathLike) -> str:
    """The path with symlinks and '..' resolved (as far as it exists); a symlink loop is a named error."""
    try:
        return os.path.realpath(path, strict=False)
    except OSError as error:  # a loop (Python 3.13+ raises; 3.11 returns the path)
        raise fail(path, f"cannot resolve the path ({error.strerror or error})") from None


def protect_inputs(paths) -> None:
    """Record `paths` as this process's inputs: no output may replace one, nor a folder holding one. Each
    that exists must be a regular file or a folder (check_input_kind)."""
    for path in paths:
        check_input_kind(path)
    _protected.update({resolved(p): str(p) for p in paths})


def check_input_kind(path: str | os.PathLike) -> None:
    """Refuse an input that is not a regular file or a folder: reading a FIFO blocks for ever, a device
    never ends, a symlink loop leads nowhere. A missing path is left to the command (it names what it
    expected)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise fail(path, f"cannot be read ({error.strerror or error})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise fail(path, f"is {kind}, not a regular file: affectflow reads files and folders only")


def claim_output(path: str | os.PathLike) -> None:
    """Refuse `path` as an output before any work: it is an input, another output of the same command,
    lies under a file, or is a folder where a file is to be written."""
    real = resolved(path)
    if real in _protected:
        raise fail(path, f"is {_input_named(real, path)}: choose another output path")
    if real in _claimed:
        raise fail(path, f"two outputs of this command would be this file ({_claimed[real]}): give each its own path")
    _check_parents(path)
    _claimed[real] = str(path)


def release_claims() -> None:
    """Forget this process's inputs and outputs (the CLI calls it after each command, for in-process runs)."""
    _protected.clear()
    _claimed.clear()


def _input_named(real: str, path) -> str:
    given = _protected[real]
    return "one of this command's inputs" if given == str(path) else f"this command's input {given}"


def _check_parents(target: str | os.PathLike) -> None:
    for parent in Path(target).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise fail(target, f"cannot be written: {parent} is a file, not a folder")
            return


def _refuse_protected(target: Path, folder: bool) -> None:
    real = resolved(target)
    if real in _protected:
        raise fail(target, f"is {_input_named(real, target)}: affectflow never replaces an input")
    if folder:
        inside = next((p for p in sorted(_protected) if p.startswith(real.rstrip(os.sep) + os.sep)), None)
        if inside is not None:
            raise fail(target, f"holds this command's input {_protected[inside]}: affectflow never replaces it")


def check_replaceable_folder(target: str | os.PathLike) -> None:
    """Refuse to replace an existing folder that affectflow did not write (no manifest) and that is not
    empty, or a file where a folder is to be written."""
    target = Path(target)
    _check_parents(target)
    _refuse_protected(target, folder=True)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise fail(target, "exists and is not a folder affectflow wrote: choose a new folder")
    if target.is_dir() and not (target / FOLDER_MANIFEST).is_file() and any(target.iterdir()):
        raise fail(
            target, "exists and was not written by affectflow: choose a new folder (affectflow replaces only its own)"
        )


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``target`` on success.

    ``suffix`` defaults to the target's own suffix so that writers that choose
    a format by extension (OpenCV, matplotlib) still do.
    """
    target = Path(target)
    _check_parents(target)
    _refuse_protected(target, folder=False)
    if target.is_dir() and not target.is_symlink():
        raise fail(target, "is a folder: a file cannot replace it")
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
    """Like :func:`atomic_path` for a whole folder (e.g. a corpus). The folder gets affectflow's manifest;
    an existing folder is replaced only if it has one (or is empty): see check_replaceable_folder."""
    import json
    import shutil

    from . import __version__

    target = Path(target)
    check_replaceable_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), dir=target.parent))
    try:
        yield tmp
        manifest = {"written_by": "affectflow", "version": __version__}
        (tmp / FOLDER_MANIFEST).write_text(json.dumps(manifest) + "\n")
        os.chmod(tmp / FOLDER_MANIFEST, 0o666 & ~current_umask())
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
