"""Everything the installed package imports is a runtime dependency, so a plain `pip install`
runs every command (`fleetcheck lab serve --https` needs trustme, for one); the only exceptions
are the optional features' extras (Kerberos, CredSSP, the lab's KDC), imported where used."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


#: Optional extras and the one package folder (or module) allowed to import them; the commands
#: that need an extra turn its ImportError into a message naming `pip install 'fleetcheck[EXTRA]'`
#: (Kerberos: the run's preflight, before any connection).
EXTRAS = {
    "sites": "fleetcheck/dispatch",
    "kerberos": "fleetcheck/transports/kerberos.py",
    "lab-kerberos": "fleetcheck/lab/kdc.py",
}


def _imports_by_file() -> dict[str, set[str]]:
    """Third-party top-level module -> the package files importing it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "fleetcheck").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return {k: v for k, v in found.items() if k not in sys.stdlib_module_names and k != "fleetcheck"}


def _imported_top_level_modules() -> set[str]:
    return set(_imports_by_file())


def _extra_distributions(extra: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(spec) for spec in project["optional-dependencies"][extra]}


def _runtime_distributions(*, with_features: bool = False) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {_name(spec) for spec in project["dependencies"]}
    if with_features:  # the optional features' extras, not the developers' tools
        for extra, specs in project.get("optional-dependencies", {}).items():
            if extra not in ("dev", "devtools"):
                names |= {_name(spec) for spec in specs} - {"fleetcheck"}
    return names


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
    # celery[redis] brings redis-py through celery's own `redis` extra, which the closure does not follow
    optional = {folder: _installed_closure(_extra_distributions(extra) | {"redis"}) for extra, folder in EXTRAS.items()}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in sorted(_imports_by_file().items()):
        dists = {_name(d) for d in providers.get(module, [])}
        if dists & installed:
            continue
        if any(dists & closure and all(f == folder or f.startswith(folder + "/") for f in files) for folder, closure in optional.items()):
            continue  # an optional extra, imported only by the folder that names it
        missing[module] = sorted(dists)
    assert missing == {}


def test_trustme_is_a_runtime_dependency() -> None:
    assert "trustme" in _runtime_distributions()
