"""The benchmark's modules for unit tests: bench/ is not an installed package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    """`bench/<name>.py` from the work tree, registered once as `fleetcheck_bench_<name>`."""
    key = f"fleetcheck_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, _BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def load_package_module(name: str) -> ModuleType:
    """`bench.<name>` as the package's own module, for the modules that import their siblings
    (`bench/run.py` does `from bench import ideal`): the repository root is appended to
    `sys.path` once, behind everything else, so nothing installed is shadowed."""
    root = str(_BENCH.parent)
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module(f"bench.{name}")
