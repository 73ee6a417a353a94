"""Install the repository's Snakemake profiles where ``snakemake --profile NAME`` finds them.

``affectflow profile install slurm --account A --partition P --gpu-partition G`` copies
``profiles/slurm/config.yaml`` to ``$XDG_CONFIG_HOME/snakemake/slurm/`` (else
``~/.config/snakemake/slurm/``), the lines marked ``# <-- your ...`` filled in, so that
``snakemake --profile slurm`` works from the repository root. ``affectflow profile show``
prints the file a profile name resolves to.

What this follows in Snakemake 9 (snakemake/cli.py ``get_profile_dir``): a ``--profile`` value
(or ``$SNAKEMAKE_PROFILE``) that exists as a path from the current folder is that path;
otherwise the name is looked up in the current folder, then in platformdirs'
``AppDirs("snakemake", "snakemake").user_config_dir`` (``$XDG_CONFIG_HOME/snakemake`` if that
is an absolute path, else ``~/.config/snakemake``), then in its ``site_config_dir`` (first
absolute entry of ``$XDG_CONFIG_DIRS``, else ``/etc/xdg``, + ``/snakemake``). A profile folder's
file is ``profile.yaml`` or ``config.yaml``, or ``*.vN+.yaml`` (Snakemake >= N; highest N wins).
snakemake/profiles.py replaces a top-level scalar value that names an existing file in the
profile's folder by that path (lists and mappings are left alone): the installed copy names
such files by absolute paths into the repository. Resource values are evaluated as Python
and kept as text only where that fails (snakemake/resources.py ``cli_evaluator``), so a name
Python or Snakemake knows (``all``, ``input``) or one like ``a100-gpu`` is written ``"'NAME'"``.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
import os
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from ..errors import AffectflowError
from ..io import OutputPath

# option -> (the marker of the line it fills in, what it is, how to find yours)
SITE_VALUES = {
    "account": ("<-- your account", "SLURM account", "`sacctmgr show assoc user=$USER format=account`"),
    "partition": ("<-- your CPU partition", "CPU partition", "`sinfo -s`"),
    "gpu_partition": ("<-- your GPU partition", "GPU partition", "`sinfo -o '%P %G'`"),
}
PROFILE_FILE = re.compile(r"(?:profile|config)(?:\.v(\d+)\+)?\.yaml")
SLURM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,+-]*")
MARKED_LINE = re.compile(r"^(\s*[\w-]+:\s+)(\S.*?)(\s+#.*)$")
TOP_LEVEL_SCALAR = re.compile(r"^([A-Za-z][\w-]*):[ \t]+([^\s#&*|>\[{!][^#]*?|\"[^\"]*\"|'[^']*')([ \t]+#.*)?$")
# Names bound where Snakemake evaluates a resource value, besides Python's builtins.
SNAKEMAKE_NAMES = frozenset(
    "wildcards input output params resources threads attempt rulename system_tmpdir shutil async_run "
    "as_py_module branch choose_file choose_folder choose_tmp collect evaluate exists extract_checksum "
    "flatten lookup parse_input prepend_param subpath".split()
)


def snakemake_user_dir() -> Path:
    """``platformdirs.AppDirs("snakemake", "snakemake").user_config_dir``, as Snakemake gets it."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "snakemake"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "snakemake"
    return Path.home() / ".config" / "snakemake"


def snakemake_site_dir() -> Path:
    """``platformdirs.AppDirs("snakemake", "snakemake").site_config_dir`` (its first entry)."""
    dirs = [d for d in os.environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep) if os.path.isabs(d)]
    if dirs:
        return Path(dirs[0]) / "snakemake"
    return Path("/Library/Application Support/snakemake" if sys.platform == "darwin" else "/etc/xdg/snakemake")


def profile_file(folder: Path) -> Path | None:
    """The file Snakemake reads in a profile folder: the highest ``.vN+`` the installed version meets."""
    try:
        major = int(metadata.version("snakemake").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        major = 9
    found = [(int(m.group(1) or 0), name) for name in sorted(os.listdir(folder)) if (m := PROFILE_FILE.fullmatch(name))]
    found = [(n, name) for n, name in found if n <= major]
    return folder / max(found, key=lambda item: item[0])[1] if found else None


def resolve_profile(name: str, cwd: Path | None = None) -> Path | None:
    """The file ``snakemake --profile NAME`` reads when started in ``cwd``; None where it finds none."""
    cwd = Path.cwd() if cwd is None else cwd
    given = cwd / name
    if given.is_file():
        return given
    search = [given.parent] if given.exists() else [cwd, snakemake_user_dir(), snakemake_site_dir()]
    for folder in search:
        candidate = folder / given.name
        if candidate.is_file():
            return candidate
        if candidate.is_dir() and (found := profile_file(candidate)) is not None:
            return found
    return None


def find_repo(explicit: Path | None) -> Path:
    """The workflow checkout: --repo, else the one this package runs from, else the current folder."""
    # this module is src/affectflow/workflow/profile.py in a checkout: the repository is three folders up
    candidates = [explicit] if explicit else [Path(__file__).resolve().parents[3], Path.cwd()]
    for repo in candidates:
        if (repo / "Snakefile").is_file() and (repo / "profiles").is_dir():
            return repo.resolve()
    where = explicit or f"{candidates[0]} (nor the current folder)"
    raise AffectflowError(f"{where}: not the affectflow repository (no Snakefile and profiles/); pass --repo DIR")


def resource_literal(value: str) -> str:
    """A YAML scalar that Snakemake's resource parser reads back as the string ``value``."""
    known = keyword.iskeyword(value) or hasattr(builtins, value) or value in SNAKEMAKE_NAMES
    return f'"{value}"' if value.isidentifier() and not known else f"\"'{value}'\""


def marked_rows(lines: list[str], option: str) -> list[int]:
    mark = re.compile(r"#\s*" + re.escape(SITE_VALUES[option][0]))
    return [i for i, line in enumerate(lines) if mark.search(line) and MARKED_LINE.match(line.rstrip("\n"))]


def placeholder(line: str) -> str:
    """The value of a marked line, as Snakemake reads it (YAML quotes, then a Python literal's)."""
    value = MARKED_LINE.match(line.rstrip("\n")).group(2)
    for quote in "\"'":
        if len(value) >= 2 and value[0] == value[-1] == quote:
            value = value[1:-1]
    return value


def fill_in(text: str, values: dict[str, str | None], no_account: bool) -> str:
    """``text`` with each marked line set to its value; --no-account comments the account out."""
    lines = text.splitlines(keepends=True)
    for option, value in values.items():
        for i in marked_rows(lines, option) if value is not None or (option == "account" and no_account) else ():
            body = lines[i].rstrip("\n")
            head, old, comment = MARKED_LINE.match(body).groups()
            if value is None:
                indent = head[: len(head) - len(head.lstrip())]
                new = f"{indent}# slurm_account: none (--no-account: the plugin guesses one from sacct, else omits -A)"
            else:
                literal = resource_literal(value)
                width = max(len(old) + len(comment) - len(comment.lstrip()), len(literal) + 1)
                new = f"{head}{literal.ljust(width)}{comment.lstrip()}"
            lines[i] = new + lines[i][len(body) :]
    return "".join(lines)


def absolute_paths(text: str, folder: Path) -> str:
    """Top-level scalars that name a file in ``folder`` (as Snakemake resolves them) made absolute."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = TOP_LEVEL_SCALAR.match(line.rstrip("\n"))
        if not match:
            continue
        value = match.group(2).strip()
        if value[:1] in "\"'":
            value = value[1:-1]
        value = os.path.expanduser(os.path.expandvars(value))
        if value and not os.path.isabs(value) and (folder / value).exists():
            path = str((folder / value).resolve()).replace('"', '\\"')
            lines[i] = f'{match.group(1)}: "{path}"{match.group(3) or ""}' + line[len(line.rstrip("\n")) :]
    return "".join(lines)


def write_profile(dest: Path, name: str, content: str, *, force: bool) -> str:
    """Write ``dest/name`` atomically: 'installed', 'replaced' or 'unchanged'.

    A new profile folder is written beside ``dest`` and renamed into place; in an existing one
    the file is written under a temporary name and renamed over the old one.
    """
    target = dest / name
    if dest.exists() and not dest.is_dir():
        raise AffectflowError(f"{dest}: exists and is not a folder (--dest names the profile folder)")
    if dest.is_dir():
        old = target.read_text() if target.is_file() else None
        if old == content:
            return "unchanged"
        present = profile_file(dest)
        if present is not None and present.name != name:
            raise AffectflowError(f"{present}: Snakemake reads this file, not {name}; remove it first")
        if old is not None and not force:
            diff = difflib.unified_diff(old.splitlines(), content.splitlines(), str(target), "new", lineterm="", n=0)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            raise AffectflowError(f"{target}: a different profile is installed there; pass --force to replace it")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return "installed" if old is None else "replaced"
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (staging / name).write_text(content)
        staging.chmod(0o755)
        os.rename(staging, dest)
    finally:
        (staging / name).unlink(missing_ok=True)
        if staging.exists():
            staging.rmdir()
    return "installed"


def _ask(option: str, current: str) -> str | None:
    """Ask on the terminal; None (keep the placeholder) for an empty answer or end of input."""
    _, label, how = SITE_VALUES[option]
    extra = ", '-': none" if option == "account" else ""
    print(f"{label} (see {how}; empty: keep the placeholder {current!r}{extra}): ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip() or None


def install(args) -> int:
    repo = find_repo(args.repo)
    folder = repo / "profiles" / args.name
    source = profile_file(folder) if folder.is_dir() else None
    if source is None:
        names = sorted(p.name for p in (repo / "profiles").iterdir() if p.is_dir() and profile_file(p))
        raise AffectflowError(f"{folder}: no such profile (there are: {', '.join(names)})")
    text = source.read_text()
    lines = text.splitlines()
    values = {option: getattr(args, option) for option in SITE_VALUES}
    current = {option: placeholder(lines[rows[0]]) for option in SITE_VALUES if (rows := marked_rows(lines, option))}
    no_account = args.no_account
    for option, value in values.items():
        flag = "--no-account" if option == "account" and no_account else f"--{option.replace('_', '-')}"
        if (value is not None or flag == "--no-account") and option not in current:
            raise AffectflowError(f"{source}: has no line marked `# {SITE_VALUES[option][0]}` to set ({flag})")

    interactive = sys.stdin is not None and sys.stdin.isatty()
    kept = []
    for option in current:
        if values[option] is not None or (option == "account" and no_account):
            continue
        answer = _ask(option, current[option]) if interactive else None
        if option == "account" and answer == "-":
            no_account = True
        elif answer is None:
            kept.append(option)
        else:
            values[option] = answer
    for option, value in values.items():
        if value is not None and not SLURM_NAME.fullmatch(value):
            flag = option.replace("_", "-")
            raise AffectflowError(f"--{flag} {value!r}: not a SLURM name (letters, digits and _ . , + -)")

    dest = (args.dest if args.dest is not None else snakemake_user_dir() / args.name).expanduser().absolute()
    given = [f"--{option.replace('_', '-')} {value}" for option, value in values.items() if value is not None]
    command = " ".join(["affectflow profile install", args.name, *given] + (["--no-account"] if no_account else []))
    header = (
        f"# Installed by `{command}`\n# from {source} (the workflow in {repo}).\n"
        "# Reinstall with --force after that file changes (edits made here are replaced then).\n"
    )
    content = header + absolute_paths(fill_in(text, values, no_account), folder.resolve())
    outcome = write_profile(dest, source.name, content, force=args.force)
    installed = dest / source.name
    print(f"affectflow profile install: {outcome} {installed}")
    for option in kept:
        mark, label, how = SITE_VALUES[option]
        flag = option.replace("_", "-")
        why = "" if interactive else " (stdin is not a terminal)"
        print(
            f"affectflow profile install: warning: no {label} given{why}"
            f": {installed} keeps the placeholder {current[option]!r} (the line marked `# {mark}`); edit it there, "
            f"or reinstall with --{flag} NAME --force{' (no accounts: --no-account)' if option == 'account' else ''}."
            f" Find yours with {how}.",
            file=sys.stderr,
        )

    found = resolve_profile(args.name, repo)
    by_name = found is not None and found.resolve() == installed.resolve()
    run = f"snakemake --profile {args.name if by_name else dest}"
    if not by_name and dest.parent.resolve() in (snakemake_user_dir().resolve(), snakemake_site_dir().resolve()):
        print(f"affectflow profile install: note: `--profile {args.name}` in {repo} reads {found}", file=sys.stderr)
    print(f"Run the workflow from the repository root:\n    cd {repo}\n    {run}")
    if current:
        print(f"    {run} --configfile config/recola.yaml   # the paper-sized run")
    if os.environ.get("SNAKEMAKE_PROFILE"):
        print(
            f"(SNAKEMAKE_PROFILE={os.environ['SNAKEMAKE_PROFILE']} is set; a --profile on the command line replaces it)"
        )
    return 0


def show(args) -> int:
    found = resolve_profile(args.name)
    if found is None:
        where = ", ".join(map(str, (Path.cwd(), snakemake_user_dir(), snakemake_site_dir())))
        raise AffectflowError(
            f"{args.name}: no Snakemake profile of that name in {where}; "
            f"install one with `affectflow profile install {args.name}`"
        )
    print(f"# {found.absolute()}")
    sys.stdout.write(found.read_text())
    return 0


def add_commands(subparsers) -> None:
    profile = subparsers.add_parser(
        "profile",
        help="install the workflow's Snakemake profiles (then: snakemake --profile slurm)",
        description="Install profiles/NAME of this repository where `snakemake --profile NAME` finds it.",
    )
    commands = profile.add_subparsers(dest="profile_command", metavar="SUBCOMMAND", required=True)
    inst = commands.add_parser(
        "install",
        help="install profiles/NAME as the Snakemake profile NAME, with your account and partitions",
        description="Write profiles/NAME/config.yaml to $XDG_CONFIG_HOME/snakemake/NAME (else "
        "~/.config/snakemake/NAME) with the SLURM account and partitions filled in; then "
        "`snakemake --profile NAME` works from the repository root. A missing value is asked for "
        "on a terminal, else the profile's placeholder stays (with a warning).",
    )
    inst.add_argument("name", nargs="?", default="slurm", metavar="NAME", help="slurm (default) or default")
    account = inst.add_mutually_exclusive_group()
    account.add_argument("--account", metavar="A", help="SLURM account (slurm_account)")
    account.add_argument("--no-account", action="store_true", help="no slurm_account (clusters without accounts)")
    inst.add_argument("--partition", metavar="P", help="CPU partition (default-resources: slurm_partition)")
    inst.add_argument("--gpu-partition", metavar="G", help="GPU partition of train_cnn, extract and train_rnn")
    inst.add_argument("--dest", type=OutputPath, metavar="DIR", help="profile folder to write instead of the default")
    inst.add_argument("--force", action="store_true", help="replace a different profile installed there")
    inst.add_argument("--repo", type=Path, metavar="DIR", help="the workflow checkout (default: affectflow's own)")
    inst.set_defaults(handler=install)
    show_parser = commands.add_parser(
        "show",
        help="print the file `snakemake --profile NAME` reads from here, and its contents",
        description="Resolve NAME as Snakemake does from the current folder (the folder itself, "
        "$XDG_CONFIG_HOME/snakemake or ~/.config/snakemake, /etc/xdg/snakemake) and print it.",
    )
    show_parser.add_argument("name", nargs="?", default="slurm", metavar="NAME")
    show_parser.set_defaults(handler=show)
