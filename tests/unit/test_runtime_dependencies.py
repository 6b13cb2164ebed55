"""Everything the installed package imports is a runtime dependency, so a plain `pip install`
runs every command (`fleetcheck lab serve --https` needs trustme, for one)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "fleetcheck").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"fleetcheck"}


def _runtime_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(spec) for spec in project["dependencies"]}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ (]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _installed_closure(roots: set[str]) -> set[str]:
    """The runtime dependencies and everything they require (without extras), transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requirements if "extra ==" not in r]
    return seen


def test_every_import_of_the_package_is_a_runtime_dependency() -> None:
    installed = _installed_closure(_runtime_distributions())
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        dists = {_name(d) for d in providers.get(module, [])}
        if not dists & installed:
            missing[module] = sorted(dists)
    assert missing == {}


def test_trustme_is_a_runtime_dependency() -> None:
    assert "trustme" in _runtime_distributions()
