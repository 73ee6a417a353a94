"""docs/design.md's module map (section 6) names every module of the package, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import affectflow

PACKAGE = Path(affectflow.__file__).resolve().parent
DESIGN = PACKAGE.parents[1] / "docs" / "design.md"


def test_the_module_map_matches_the_tree():
    text = DESIGN.read_text().split("## 6. The package", 1)[1]
    mapped = set(re.findall(r"^\| `([\w.*]+)` \|", text, re.M))
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        if parts[0] in ("synth", "testing"):
            modules.add(f"{parts[0]}.*")
        else:
            modules.add(".".join(parts))
    assert mapped == modules, {"not in the map": sorted(modules - mapped), "not in the tree": sorted(mapped - modules)}
