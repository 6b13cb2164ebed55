"""Inventory sources Ansible reads, one reader per kind: INI, YAML, a directory, dynamic.

`read_sources` fills one `RawInventory` from every `-i` source in order, the way Ansible's
InventoryManager does: a directory is read entry by entry in sorted order (hidden files,
group_vars/host_vars and backup/doc extensions skipped); a file is an executable script or a
`plugin:` config or a TOML file (all resolved by ansible-inventory), else YAML when it parses
as a mapping, else INI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import RawInventory
from fleetcheck.inventory.sources.directory import directory_entries
from fleetcheck.inventory.sources.ini import read_ini
from fleetcheck.inventory.sources.script import read_listing, run_ansible_inventory
from fleetcheck.inventory.sources.vars_files import parse_marked, read_text
from fleetcheck.inventory.sources.yaml import read_yaml
from fleetcheck.inventory.vault import VaultSecrets

YAML_SUFFIXES = ("", ".yml", ".yaml", ".json")
MAX_SOURCES = 10_000


@dataclass
class SourceSet:
    """What was read: the data, the folders whose group_vars/host_vars apply, the kinds seen."""

    inv: RawInventory = field(default_factory=RawInventory)
    bases: list[Path] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def read_sources(
    paths: list[Path], secrets: VaultSecrets, vault_files: list[str] | None = None, preloaded: Any = None
) -> SourceSet:
    """All sources into one inventory; `preloaded` is the first file's YAML when the caller parsed it already."""
    out = SourceSet()
    if isinstance(preloaded, dict) and "plugin" not in preloaded and len(paths) == 1 and paths[0].is_file():
        out.files.append(paths[0])
        out.kinds.append("yaml")
        read_yaml(preloaded, paths[0], out.inv)
        out.bases.append(paths[0].parent)
        out.inv.reconcile()
        return out
    for path in paths:
        for file in directory_entries(path) if path.is_dir() else [path]:
            _read_file(file, out, secrets, vault_files)
        # group_vars/host_vars apply to dynamic sources too: `--export` may have folded them into
        # its groups' vars already, and applying them again at their own level gives Ansible's result.
        out.bases.append(path if path.is_dir() else path.parent)
    out.inv.reconcile()
    return out


def _is_script(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            shebang = handle.read(2) == b"#!"
    except OSError:
        return False
    return shebang and os.access(path, os.X_OK)


def _read_file(path: Path, out: SourceSet, secrets: VaultSecrets, vault_files: list[str] | None) -> None:
    out.files.append(path)
    if len(out.files) > MAX_SOURCES:
        raise InventoryError(path, None, None, f"more than {MAX_SOURCES} inventory files")
    if _is_script(path):
        out.kinds.append("dynamic")
        read_listing(run_ansible_inventory(path, "an executable inventory script", vault_files), path, out.inv)
        return
    if path.suffix == ".toml":  # Ansible's toml plugin: left to Ansible
        out.kinds.append("dynamic")
        read_listing(run_ansible_inventory(path, "a TOML inventory", vault_files), path, out.inv)
        return
    text = read_text(path, secrets)
    data = _yaml_mapping(text, path) if path.suffix in YAML_SUFFIXES else None
    if isinstance(data, dict) and "plugin" in data and not isinstance(data.get("plugin"), dict):
        out.kinds.append("dynamic")
        what = f"the inventory plugin config (plugin: {data['plugin']})"
        read_listing(run_ansible_inventory(path, what, vault_files), path, out.inv)
        return
    if isinstance(data, dict):
        out.kinds.append("yaml")
        read_yaml(data, path, out.inv)
        return
    if path.suffix in (".yml", ".yaml", ".json") and data is not None and not _ini_text(text):
        raise InventoryError(path, getattr(data, "line", 1), None, "expected a mapping of groups at the top level")
    out.kinds.append("ini")
    read_ini(text, path, out.inv)


def _yaml_mapping(text: str, path: Path) -> Any:
    """The YAML document when it is one, else None (so an INI file without extension falls through)."""
    stripped = text.lstrip()
    if path.suffix == "" and stripped.startswith("["):
        return None
    try:
        data = parse_marked(text, path)
    except InventoryError:
        if path.suffix in (".yml", ".yaml", ".json") and not _ini_text(text):
            raise
        return None
    if path.suffix == "" and isinstance(data, dict) and not all(v is None or isinstance(v, dict) for v in data.values()):
        return None
    return data


def _ini_text(text: str) -> bool:
    """The first line that is not blank or a comment is an INI section header."""
    for line in text[:65536].splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "#;":
            return stripped.startswith("[") and stripped.endswith("]")
    return False


def looks_like_ini(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return False
    return _ini_text(head)
