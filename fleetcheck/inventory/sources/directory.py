"""An inventory directory, listed the way Ansible's InventoryManager walks it.

Entries in sorted order, sub-directories recursively; skipped: hidden names, `group_vars`,
`host_vars`, `vars_plugins`, and Ansible's INVENTORY_IGNORE_EXTS default (its REJECT_EXTS plus
.orig, .cfg and .retry). Each file left is one source for the readers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from fleetcheck.inventory.errors import InventoryError

IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
    + "|".join(re.escape(ext) + "$" for ext in
               (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry"))
)
#: Nesting refused beyond this (a symlink loop, or a tree no one writes by hand).
MAX_DEPTH = 16


def directory_entries(folder: Path, depth: int = 0) -> Iterator[Path]:
    """The files of an inventory directory that Ansible would try as sources, in its order."""
    if depth > MAX_DEPTH:
        raise InventoryError(folder, None, None, f"inventory directories nest more than {MAX_DEPTH} levels deep")
    for entry in sorted(os.listdir(folder)):
        if IGNORED.search(entry):
            continue
        full = folder / entry
        if full.is_dir():
            yield from directory_entries(full, depth + 1)
        elif full.is_file():
            yield full
