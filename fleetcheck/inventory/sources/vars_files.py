"""`group_vars/` and `host_vars/` beside an inventory source, found the way Ansible finds them.

For an entity NAME under BASE/group_vars (or host_vars): the first of NAME, NAME.yml,
NAME.yaml, NAME.json that exists; a directory is read whole, recursively, in sorted order,
skipping hidden files, `~` backups and other extensions. BASE is the inventory file's folder,
or the inventory directory itself. A file may be vault-encrypted as a whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import Origin, Var
from fleetcheck.inventory.vault import VaultError, VaultSecrets, is_vault
from fleetcheck.yamlfile import MAX_BYTES, YamlFileError, parse_yaml
from fleetcheck.yamlfile import read_text as read_utf8

EXTENSIONS = ("", ".yml", ".yaml", ".json")
MAX_VARS_FILES = 100_000
MAX_DIR_DEPTH = 16


class VarsFiles:
    """Variables from the group_vars/host_vars folders of one or more inventory bases, cached."""

    def __init__(self, bases: list[Path], secrets: VaultSecrets) -> None:
        self.secrets = secrets
        unique: dict[Path, Path] = {}
        for base in bases:
            unique.setdefault(base.resolve(), base)  # shown as given, compared resolved
        self.bases = list(unique.values())
        self._listing: dict[Path, set[str]] = {}
        self._loaded: dict[Path, dict[str, Var]] = {}
        self._cache: dict[tuple[str, str], dict[str, Var]] = {}
        self.files_read: list[Path] = []
        self._folders = {sub: [base / sub for base in self.bases] for sub in ("group_vars", "host_vars")}

    def group(self, name: str) -> dict[str, Var]:
        return self._entity("group_vars", name)

    def host(self, name: str) -> dict[str, Var]:
        return self._entity("host_vars", name)

    def _entity(self, subdir: str, name: str) -> dict[str, Var]:
        key = (subdir, name)
        if key not in self._cache:
            out: dict[str, Var] = {}
            if name and not name.startswith(os.sep):
                for folder in self._folders[subdir]:
                    for found in self._find(folder, name):
                        out.update(self._load(found))
            self._cache[key] = out
        return self._cache[key]

    def _names(self, folder: Path) -> set[str]:
        if folder not in self._listing:
            try:
                self._listing[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
            except OSError:
                self._listing[folder] = set()
        return self._listing[folder]

    def _find(self, folder: Path, name: str) -> list[Path]:
        names = self._names(folder)
        for ext in EXTENSIONS:
            if name + ext in names:
                full = folder / (name + ext)
                return _dir_files(full) if full.is_dir() else [full]
        return []

    def _load(self, path: Path) -> dict[str, Var]:
        if path not in self._loaded:
            self.files_read.append(path)
            if len(self.files_read) > MAX_VARS_FILES:
                raise InventoryError(path, None, None, f"more than {MAX_VARS_FILES} vars files")
            self._loaded[path] = load_vars_file(path, self.secrets)
        return self._loaded[path]


def _dir_files(folder: Path, depth: int = 0) -> list[Path]:
    if depth > MAX_DIR_DEPTH:  # a symlink loop, or a tree no one writes by hand
        raise InventoryError(folder, None, None, f"vars folders nest more than {MAX_DIR_DEPTH} levels deep")
    found: list[Path] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = folder / entry
        ext = os.path.splitext(entry)[1]
        if full.is_dir() and not ext:
            found += _dir_files(full, depth + 1)
        elif full.is_file() and ext in EXTENSIONS:
            found.append(full)
    return found


def read_text(path: Path, secrets: VaultSecrets) -> str:
    """A file's text, decrypted when it is a vault; size-limited and UTF-8 checked."""
    return read_vault_aware(path, secrets)[0]


def read_vault_aware(path: Path, secrets: VaultSecrets) -> tuple[str, bool]:
    """(text, whether it was vault-encrypted)."""
    try:
        text = read_utf8(path, max_bytes=MAX_BYTES)
    except YamlFileError as exc:
        raise InventoryError(path, exc.line, None, exc.problem, exc.hint) from None
    if is_vault(text):
        try:
            return secrets.decrypt(text), True
        except VaultError as exc:
            raise InventoryError(path, 1, None, f"cannot decrypt: {exc}") from None
    return text, False


def parse_marked(text: str, path: Path) -> Any:
    """YAML with lines, errors as InventoryError."""
    try:
        return parse_yaml(text, str(path))
    except YamlFileError as exc:
        raise InventoryError(path, exc.line, exc.key, exc.problem, exc.hint) from None


def load_vars_file(path: Path, secrets: VaultSecrets) -> dict[str, Var]:
    """One vars file as variables with their lines; the top level must be a mapping (or empty)."""
    text, encrypted = read_vault_aware(path, secrets)
    if path.suffix == ".json":
        try:
            data: Any = json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise InventoryError(path, exc.lineno, None, f"JSON syntax error: {exc.msg}") from None
    else:
        data = parse_marked(text, path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(path, getattr(data, "line", 1), None, "a vars file must hold a mapping of variables")
    lines = getattr(data, "key_lines", {})
    return {str(k): Var(v, Origin(path, lines.get(k)), encrypted) for k, v in data.items()}
