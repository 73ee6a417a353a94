"""`affectflow profile install/show`: the repository's Snakemake profiles, installed where
`snakemake --profile NAME` finds them, with the site's SLURM account and partitions filled in."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectflow.cli import main
from affectflow.workflow import profile as profile_module
from helpers import REPO, snakemake, tool_env

SOURCE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("train_cnn", "extract", "train_rnn", "annotate_batch")


class Terminal(io.StringIO):
    """Standard input that says it is a terminal, answering the prompts with its lines."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real ~/.config: XDG_CONFIG_HOME is a temporary folder, SNAKEMAKE_PROFILE unset, no terminal."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def install(*args: str) -> int:
    return main(["profile", "install", *args])


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def site_values(profile: dict) -> tuple:
    defaults = profile["default-resources"]
    return (
        defaults.get("slurm_account"),
        defaults["slurm_partition"],
        {rule: profile["set-resources"][rule]["slurm_partition"] for rule in GPU_RULES},
    )


def test_profile_dirs_are_the_ones_snakemake_searches(monkeypatch, tmp_path):
    from platformdirs import AppDirs  # what snakemake.common.get_appdirs() builds

    for xdg in (str(tmp_path / "xdg"), "relative/ignored", ""):
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
        assert profile_module.snakemake_user_dir() == Path(AppDirs("snakemake", "snakemake").user_config_dir)
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert profile_module.snakemake_user_dir() == Path(AppDirs("snakemake", "snakemake").user_config_dir)
    for dirs in (f"{tmp_path}/a{os.pathsep}/b", ""):
        monkeypatch.setenv("XDG_CONFIG_DIRS", dirs)
        assert profile_module.snakemake_site_dir() == Path(AppDirs("snakemake", "snakemake").site_config_dir)


def test_install_with_dest_fills_in_the_account_and_partitions_and_keeps_the_rest(tmp_path, capsys):
    dest = tmp_path / "profiles" / "mine"
    assert (
        install(
            "slurm", "--account", "proj_7", "--partition", "all", "--gpu-partition", "a100-gpu", "--dest", str(dest)
        )
        == 0
    )
    out, err = capsys.readouterr()
    installed = dest / "config.yaml"
    assert f"installed {installed}" in out
    assert f"snakemake --profile {dest}" in out  # not in a folder Snakemake searches: named by path
    assert "warning" not in err

    profile, original = load(installed), load(SOURCE)
    # `all` is a Python builtin and `a100-gpu` an expression: both go to Snakemake as quoted strings.
    assert site_values(profile) == ("proj_7", "'all'", dict.fromkeys(GPU_RULES, "'a100-gpu'"))
    for part in (profile, original):
        for key in ("slurm_account", "slurm_partition"):
            part["default-resources"].pop(key)
        for rule in GPU_RULES:
            part["set-resources"][rule].pop("slurm_partition")
    assert profile == original
    text = installed.read_text()
    assert text.count("# <-- your") == 3 and "&gpu_job" in text and "<<: *gpu_job" in text
    assert list(dest.parent.iterdir()) == [dest]  # no temporary folder left beside it


def test_refuses_to_replace_a_different_profile_without_force(tmp_path, capsys):
    dest = tmp_path / "slurm"
    assert install("--account", "a1", "--partition", "p1", "--gpu-partition", "g1", "--dest", str(dest)) == 0
    first = (dest / "config.yaml").read_text()
    capsys.readouterr()

    assert install("--account", "a1", "--partition", "p1", "--gpu-partition", "g1", "--dest", str(dest)) == 0
    assert f"unchanged {dest / 'config.yaml'}" in capsys.readouterr().out

    assert install("--account", "a2", "--partition", "p1", "--gpu-partition", "g1", "--dest", str(dest)) == 2
    err = capsys.readouterr().err
    assert f"{dest / 'config.yaml'}: a different profile is installed there; pass --force" in err
    assert '+  slurm_account: "a2"' in err  # the difference is shown
    assert (dest / "config.yaml").read_text() == first

    assert install("--account", "a2", "--partition", "p1", "--gpu-partition", "g1", "--dest", str(dest), "--force") == 0
    assert f"replaced {dest / 'config.yaml'}" in capsys.readouterr().out
    assert site_values(load(dest / "config.yaml"))[0] == "a2"
    assert sorted(p.name for p in dest.iterdir()) == ["config.yaml"]


def test_missing_values_without_a_terminal_keep_the_placeholders_with_a_warning(tmp_path, capsys):
    dest = tmp_path / "slurm"
    assert install("--partition", "batch", "--dest", str(dest)) == 0
    err = capsys.readouterr().err
    assert re.search(
        r"warning: no SLURM account given \(stdin is not a terminal\): .*config\.yaml keeps the "
        r"placeholder 'my_account'",
        err,
    ), err
    assert "warning: no GPU partition given" in err and "--gpu-partition NAME --force" in err
    assert "CPU partition" not in err
    assert site_values(load(dest / "config.yaml")) == ("my_account", "batch", dict.fromkeys(GPU_RULES, "gpu"))


def test_missing_values_are_asked_for_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", Terminal("acct9\n\nh100\n"))
    dest = tmp_path / "slurm"
    assert install("--dest", str(dest)) == 0
    err = capsys.readouterr().err
    assert "SLURM account" in err and "GPU partition" in err  # the prompts
    assert "warning: no CPU partition given:" in err  # the empty answer keeps the placeholder
    assert site_values(load(dest / "config.yaml")) == ("acct9", "cpu", dict.fromkeys(GPU_RULES, "h100"))


def test_no_account_drops_the_account_line(tmp_path):
    dest = tmp_path / "slurm"
    assert install("--no-account", "--partition", "cpu", "--gpu-partition", "gpu", "--dest", str(dest)) == 0
    assert site_values(load(dest / "config.yaml"))[0] is None


def test_bad_names_and_options_are_refused_before_anything_is_written(tmp_path, capsys):
    dest = tmp_path / "slurm"
    assert install("--account", "x y", "--dest", str(dest)) == 2
    assert "--account 'x y': not a SLURM name" in capsys.readouterr().err
    assert install("default", "--partition", "cpu", "--dest", str(dest)) == 2
    assert "has no line marked `# <-- your CPU partition` to set (--partition)" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert install("--account", "a", "--dest", str(tmp_path / "file")) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not dest.exists()


def test_a_failed_write_leaves_no_profile(tmp_path, monkeypatch):
    def broken_rename(*args):
        raise OSError("disk full")

    monkeypatch.setattr(profile_module.os, "rename", broken_rename)
    with pytest.raises(OSError):
        install("--account", "a", "--partition", "p", "--gpu-partition", "g", "--dest", str(tmp_path / "new" / "slurm"))
    assert list((tmp_path / "new").iterdir()) == []


def test_profile_paths_are_made_absolute_as_snakemake_resolves_them(tmp_path):
    """A top-level value naming a file beside the profile is read by Snakemake as that file
    (snakemake/profiles.py); the installed copy names it by its absolute path."""
    from snakemake.profiles import ProfileConfigFileParser

    repo = tmp_path / "repo"
    (repo / "profiles" / "site").mkdir(parents=True)
    (repo / "Snakefile").write_text("")
    (repo / "profiles" / "site" / "extra.yaml").write_text("x: 1\n")
    (repo / "profiles" / "site" / "config.yaml").write_text(
        "configfile: extra.yaml   # beside the profile\nexecutor: local\njobs: 3\nforcerun:\n  - extra.yaml\n"
    )
    dest = tmp_path / "installed"
    assert install("site", "--repo", str(repo), "--dest", str(dest)) == 0

    def parsed(path: Path) -> dict:
        with open(path) as stream:
            return dict(ProfileConfigFileParser().parse(stream))

    installed, original = parsed(dest / "config.yaml"), parsed(repo / "profiles" / "site" / "config.yaml")
    assert installed["configfile"] == str((repo / "profiles" / "site" / "extra.yaml").resolve())
    assert Path(original["configfile"]).resolve() == Path(installed["configfile"])
    assert installed["forcerun"] == original["forcerun"] == ["extra.yaml"]  # lists: not resolved by Snakemake
    assert installed["jobs"] == original["jobs"]


def test_show_prints_the_file_snakemake_would_read(tmp_path, capsys, monkeypatch):
    assert main(["profile", "show", "slurm"]) == 2
    assert "no Snakemake profile of that name" in capsys.readouterr().err
    assert install("--account", "a", "--partition", "p", "--gpu-partition", "g") == 0
    installed = tmp_path / "xdg" / "snakemake" / "slurm" / "config.yaml"
    assert "snakemake --profile slurm\n" in capsys.readouterr().out  # found by name from the repository root
    monkeypatch.chdir(REPO)
    assert main(["profile", "show", "slurm"]) == 0
    out = capsys.readouterr().out
    assert out == f"# {installed}\n{installed.read_text()}"


@pytest.mark.slow
def test_snakemake_profile_slurm_from_the_repository_root_plans_jobs_with_the_installed_settings(tmp_path):
    """The design's command verbatim: `snakemake --profile slurm`, run in the repository root, finds the
    installed profile through XDG_CONFIG_HOME; a dry run needs no cluster."""
    env = tool_env()
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env.pop("SNAKEMAKE_PROFILE", None)
    installed = subprocess.run(
        [
            str(Path(sys.executable).parent / "affectflow"),
            "profile",
            "install",
            "slurm",
            "--account",
            "proj_7",
            "--partition",
            "all",
            "--gpu-partition",
            "a100-gpu",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert installed.returncode == 0, installed.stderr
    assert f"cd {REPO}\n    snakemake --profile slurm\n" in installed.stdout
    assert (tmp_path / "xdg" / "snakemake" / "slurm" / "config.yaml").is_file()
    assert not (REPO / "slurm").exists(), "a `slurm` in the repository root would shadow the installed profile"

    workdir = tmp_path / "work"
    workdir.mkdir()
    # No -s: Snakemake finds the Snakefile in the repository root, as for the user.
    result = snakemake(
        workdir, "--profile", "slurm", "-n", "--configfile", "config/tiny.yaml", snakefile=None, cwd=REPO, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Using profiles slurm " in output
    planned: dict[str, set[tuple[str, str]]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"^\s*(?:local)?rule (\w+):", line):  # indented inside a group job
            rule = match.group(1)
        elif rule and line.strip().startswith("resources:"):
            resources = dict(item.split("=", 1) for item in line.split(":", 1)[1].strip().split(", "))
            planned.setdefault(rule, set()).add((resources["slurm_account"], resources["slurm_partition"]))
            rule = None
    assert {"train_cnn", "extract", "train_rnn", "align", "evaluate", "tables"} <= set(planned), planned
    for name, settings in planned.items():
        assert settings == {("proj_7", "a100-gpu" if name in GPU_RULES else "all")}, (name, settings)
