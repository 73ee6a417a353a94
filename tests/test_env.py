"""The conda environment of the rules against pyproject.toml, the single source of affectflow's dependencies.

Static checks only (no conda here): envs/*.yaml are what tools/gen_env.py derives; every runtime
requirement is in envs/affectflow.yaml at the exact version `make` installs, inside the declared
range; the post-deploy script installs affectflow with its dependencies and builds the extension;
and every module affectflow imports is declared.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "affectflow"
ENV_FILE = REPO / "envs" / "affectflow.yaml"
POST_DEPLOY = REPO / "envs" / "affectflow.post-deploy.sh"
LOCK_FILES = ("requirements.txt", "constraints.txt", "requirements/torch.txt")

# Import name -> distribution, where they differ.
IMPORT_TO_DISTRIBUTION = {
    "cv2": "opencv-python-headless",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "arff": "liac-arff",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models",
    "PIL": "pillow",
}
# Declared runtime dependencies that affectflow's own code does not import, and why they stay.
DECLARED_NOT_IMPORTED: dict[str, str] = {}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements(items: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(req.name): req for req in map(Requirement, items)}


def runtime_requirements() -> dict[str, Requirement]:
    return _requirements(_pyproject()["project"]["dependencies"])


def build_requirements() -> dict[str, Requirement]:
    return _requirements(_pyproject()["build-system"]["requires"])


def lock() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in LOCK_FILES:
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                versions.setdefault(canonicalize_name(req.name), str(req.specifier).removeprefix("=="))
    return versions


def conda_env() -> tuple[list[str], dict[str, Requirement]]:
    """(conda specs, pip requirements by canonical name) of envs/affectflow.yaml."""
    data = yaml.safe_load(ENV_FILE.read_text())
    conda = [dep for dep in data["dependencies"] if isinstance(dep, str)]
    pip_sections = [dep["pip"] for dep in data["dependencies"] if isinstance(dep, dict)]
    assert len(pip_sections) == 1, "envs/affectflow.yaml: expected one pip: section"
    return conda, _requirements(pip_sections[0])


def test_env_files_are_generated_from_pyproject():
    check = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_env.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_runtime_requirement_is_in_the_env_with_its_pin():
    _, pip = conda_env()
    versions = lock()
    for key, declared in runtime_requirements().items():
        assert key in pip, f"{declared.name}: a runtime dependency missing from envs/affectflow.yaml"
        specs = list(pip[key].specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"envs/affectflow.yaml: {pip[key]} is not an exact pin"
        version = specs[0].version
        assert declared.specifier.contains(version, prereleases=True), f"{pip[key]} is outside pyproject's {declared}"
        assert version == versions.get(key), f"{pip[key]}, but `make` installs {declared.name}=={versions.get(key)}"


def test_env_builds_the_extension_without_isolation():
    conda, pip = conda_env()
    for key, declared in build_requirements().items():
        assert key in pip, f"{declared.name}: a build requirement missing from envs/affectflow.yaml"
        version = lock().get(key)
        if version is not None:
            assert str(pip[key].specifier) == f"=={version}", f"{pip[key]}, but `make` builds with {version}"
    names = {spec.split("=")[0].split(" ")[0] for spec in conda}
    assert "cxx-compiler" in names, "no C++ compiler for affectflow._native"
    # conda-forge's dlib would install a second `dlib` Python module over dlib-bin's.
    assert "dlib" not in names
    python = next(spec for spec in conda if spec.startswith("python="))
    requires_python = _pyproject()["project"]["requires-python"]
    assert Requirement(f"python{requires_python}").specifier.contains(python.removeprefix("python=") + ".0")


def test_env_holds_nothing_undeclared():
    _, pip = conda_env()
    declared = runtime_requirements() | build_requirements()
    assert set(pip) <= set(declared), f"not declared in pyproject.toml: {sorted(set(pip) - set(declared))}"


def _post_deploy_commands() -> list[str]:
    lines = []
    for line in POST_DEPLOY.read_text().splitlines():
        line = line.split("#", 1)[0].strip() if not line.startswith("#!") else ""
        if line:
            lines.append(line)
    return lines


def test_post_deploy_installs_affectflow_with_its_dependencies():
    syntax = subprocess.run(["bash", "-n", str(POST_DEPLOY)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    installs = [line for line in _post_deploy_commands() if "pip install" in line]
    assert len(installs) == 1, installs
    # Dependencies are resolved against the environment (a stale env gets what it lacks) ...
    assert "--no-deps" not in installs[0]
    # ... and the extension is built with the environment's pinned pybind11/setuptools.
    assert "--no-build-isolation" in installs[0]
    assert "-e " not in installs[0] and "--editable" not in installs[0]
    smoke = [line for line in _post_deploy_commands() if line.startswith("python -c")]
    assert smoke and "affectflow._native" in smoke[-1]


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module -> files of src/affectflow that import it (lazy imports and find_spec too)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("find_spec", "import_module")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and not node.args[0].value.startswith(".")
            ):
                names = [node.args[0].value]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def third_party_imports() -> dict[str, set[str]]:
    return {
        name: files
        for name, files in imported_top_level_modules().items()
        if name not in sys.stdlib_module_names and name != "affectflow"
    }


def test_every_runtime_import_is_declared():
    declared = runtime_requirements()
    missing = {
        name: sorted(files)
        for name, files in third_party_imports().items()
        if canonicalize_name(IMPORT_TO_DISTRIBUTION.get(name, name)) not in declared
    }
    assert not missing, f"imported by affectflow but not in pyproject.toml [project] dependencies: {missing}"


def test_every_declared_runtime_dependency_is_imported():
    imported = {canonicalize_name(IMPORT_TO_DISTRIBUTION.get(name, name)) for name in third_party_imports()}
    unused = set(runtime_requirements()) - imported - set(DECLARED_NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but never imported by src/affectflow: {sorted(unused)}"
    stale = set(DECLARED_NOT_IMPORTED) & imported
    assert not stale, f"imported after all: drop from DECLARED_NOT_IMPORTED: {sorted(stale)}"


def test_import_mapping_matches_installed_distributions():
    installed = packages_distributions()
    checked = 0
    for name in third_party_imports():
        if importlib.util.find_spec(name) is None or name not in installed:
            continue
        expected = canonicalize_name(IMPORT_TO_DISTRIBUTION.get(name, name))
        assert expected in {canonicalize_name(dist) for dist in installed[name]}, (name, installed[name])
        checked += 1
    if not checked:
        pytest.skip("affectflow's dependencies are not installed here")
