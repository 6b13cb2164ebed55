"""The product never imports the simulated fleet: `fleetcheck.lab` may import the product, not the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fleetcheck"
#: The command line mounts `fleetcheck lab` as a sub-command: the one door from the product into the lab.
ALLOWED = {"fleetcheck/cli.py": {"fleetcheck.lab.cli", "fleetcheck.lab.cli.lab_app"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_product_does_not_import_the_lab() -> None:
    offenders = {
        rel: sorted(n for n in _imports(path) if n.startswith("fleetcheck.lab") and n not in ALLOWED.get(rel, set()))
        for path in PACKAGE.rglob("*.py")
        if PACKAGE / "lab" not in path.parents
        for rel in [path.relative_to(PACKAGE.parent).as_posix()]
    }
    assert {k: v for k, v in offenders.items() if v} == {}
