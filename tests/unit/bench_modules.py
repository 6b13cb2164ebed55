"""The benchmark's modules for unit tests: bench/ is not an installed package."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

_ROOT = str(Path(__file__).resolve().parents[2])


def load(name: str) -> ModuleType:
    """`bench.<name>` from the work tree, as the bench itself imports it (`bench/run.py` does
    `from bench import ideal`): the repository root is appended to `sys.path` once, behind
    everything else, so nothing installed is shadowed and each module is loaded once."""
    if _ROOT not in sys.path:
        sys.path.append(_ROOT)
    return importlib.import_module(f"bench.{name}")
