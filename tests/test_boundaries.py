"""Module boundaries: the pipeline never imports the test helpers, and modules stay readable in size.

Read from the source files with ``ast`` (nothing is imported), so a lazy import
inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import affectflow

PACKAGE_DIR = Path(affectflow.__file__).resolve().parent
REPO = PACKAGE_DIR.parents[1]
TESTING = "affectflow.testing"
# A module past this many (ruff-formatted) lines does two jobs, and a function past MAX_FUNCTION_LINES
# reads as a recipe: split them by concern.
MAX_LINES = 450
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def is_testing(name: str) -> bool:
    return name == TESTING or name.startswith(TESTING + ".")


def imported_names(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name ``source`` (the text of ``module``) imports, relative imports resolved.

    ``from a import b`` gives both ``a`` and ``a.b`` (b may be a submodule), and
    a string constant that is exactly a dotted ``affectflow.`` name counts too
    (``importlib.import_module("affectflow....")``).
    """
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"affectflow(\.\w+)+", node.value):
                names.add(node.value)
    return names


def test_the_checker_sees_every_kind_of_import():
    source = "\n".join(
        [
            "import affectflow.testing.reference",
            "from affectflow import testing",
            "from .. import testing as t",
            "from ..testing.faces import write_face_corpus",
            "def later():",
            "    from ..testing import detection",
            "    importlib.import_module('affectflow.testing.faces')",
        ]
    )
    names = imported_names(source, "affectflow.synth.writer")
    assert {
        "affectflow.testing.reference",
        "affectflow.testing",
        "affectflow.testing.faces",
        "affectflow.testing.detection",
    } <= names
    assert imported_names("from .plan import x", "affectflow.synth", is_package=True) >= {"affectflow.synth.plan"}
    assert imported_names("from .plan import x", "affectflow.synth.render") >= {"affectflow.synth.plan"}
    assert not any(map(is_testing, imported_names("from ..contracts import DIMENSIONS", "affectflow.synth.plan")))


def test_the_pipeline_does_not_import_the_test_helpers():
    modules = package_modules()
    assert "affectflow.synth.writer" in modules and "affectflow.testing.reference" in modules
    offenders = {}
    for name, path in modules.items():
        if is_testing(name):
            continue
        found = sorted(filter(is_testing, imported_names(path.read_text(), name, path.name == "__init__.py")))
        if found:
            offenders[name] = found
    assert offenders == {}, f"pipeline modules importing {TESTING}: {offenders}"


def test_the_workflow_does_not_import_the_test_helpers():
    workflow = REPO / "workflow"
    files = [REPO / "Snakefile", *sorted(workflow.rglob("*.smk")), *sorted(workflow.rglob("*.py"))]
    offenders = [str(path.relative_to(REPO)) for path in files if path.is_file() and TESTING in path.read_text()]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_modules_stay_small(name):
    lines = len(package_modules()[name].read_text().splitlines())
    assert lines < MAX_LINES, f"{name} has {lines} lines (under {MAX_LINES} wanted): split it by concern"


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_functions_stay_short(name):
    tree = ast.parse(package_modules()[name].read_text())
    long = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its text (function-local imports too)."""
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        found = imported_names(path.read_text(), name, path.name == "__init__.py")
        graph[name] = {other for other in found if other in modules and other != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("affectflow.faces.align", "affectflow.inference.pipeline"),
        ("affectflow.nets.networks", "affectflow.inference.pipeline"),
        ("affectflow.inference.pipeline", "affectflow.learning.loop"),
        ("affectflow.inference.pipeline", "affectflow.learning.commands"),
        ("affectflow.faces.align", "affectflow.learning.loop"),
        ("affectflow.modelfile", "affectflow.nets.networks"),
        ("affectflow.modelfile", "affectflow.inference.pipeline"),
        ("affectflow.data.corpus", "affectflow.synth"),
    ],
)
def test_lower_modules_do_not_import_upper_ones(module, forbidden):
    """Arrows run downward: alignment and the networks below inference, inference below training,
    the model file's owner below everything that reads or writes it; directly or through others."""
    graph = import_graph()
    reached, todo = set(), [module]
    while todo:
        for other in graph[todo.pop()] - reached:
            reached.add(other)
            todo.append(other)
    assert forbidden not in reached
