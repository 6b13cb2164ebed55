"""The native inventory format (docs/inventory-format.md): hosts, nested groups, inherited vars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.settings import ParsedInventory, validate_level
from fleetcheck.yamlfile import line_of

TOP_KEYS = ("playbooks", "vars", "groups", "hosts", "waivers")
GROUP_KEYS = ("vars", "hosts", "groups")
MAX_GROUP_DEPTH = 32


def _expect_mapping(value: Any, path: Path, root: Any, loc: list[Any], what: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(path, line_of(root, loc), ".".join(map(str, loc)), f"expected a mapping of {what}")
    return value


def _check_keys(value: dict[Any, Any], allowed: tuple[str, ...], path: Path, root: Any, loc: list[Any]) -> None:
    for key in value:
        if key not in allowed:
            raise InventoryError(
                path, line_of(root, [*loc, key]), ".".join(map(str, [*loc, key])), "unknown key",
                "allowed here: " + ", ".join(allowed),
            )


def _str_list(value: Any, path: Path, root: Any, loc: list[Any]) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InventoryError(path, line_of(root, loc), ".".join(map(str, loc)), "expected a list of names")
    return list(value)


def _hosts(
    hosts: Any, inv: ParsedInventory, path: Path, root: Any, loc: list[Any], groups: list[str],
    group_levels: list[dict[str, Any]],
) -> None:
    for name, entry in _expect_mapping(hosts, path, root, loc, "host names").items():
        if not isinstance(name, str | int) or not str(name).strip():
            raise InventoryError(path, line_of(root, loc), None, f"invalid host name {name!r}")
        own = validate_level(entry, path=path, root=root, loc=[*loc, name], host=True)
        inv.add_occurrence(str(name), line_of(root, [*loc, name]), groups, group_levels, own)


def _group(
    name: str, body: Any, inv: ParsedInventory, path: Path, root: Any, loc: list[Any], parents: list[str],
    parent_levels: list[dict[str, Any]],
) -> None:
    if len(parents) >= MAX_GROUP_DEPTH:
        raise InventoryError(path, line_of(root, loc), name, f"groups nest deeper than {MAX_GROUP_DEPTH} levels")
    body = _expect_mapping(body, path, root, loc, "group keys")
    _check_keys(body, GROUP_KEYS, path, root, loc)
    inv.groups.setdefault(name, [])
    levels = [*parent_levels, validate_level(body.get("vars"), path=path, root=root, loc=[*loc, "vars"], host=False)]
    chain = [*parents, name]
    _hosts(body.get("hosts"), inv, path, root, [*loc, "hosts"], chain, levels)
    for child, child_body in _expect_mapping(body.get("groups"), path, root, [*loc, "groups"], "groups").items():
        _group(str(child), child_body, inv, path, root, [*loc, "groups", child], chain, levels)


def parse_native(data: Any, path: Path) -> ParsedInventory:
    """Walk the native tree into host drafts; every error carries the YAML line."""
    root = _expect_mapping(data, path, data, [], "top-level keys")
    _check_keys(root, TOP_KEYS, path, root, [])
    inv = ParsedInventory(fmt="native")
    if "playbooks" in root:
        inv.playbooks = _str_list(root["playbooks"], path, root, ["playbooks"])
    if root.get("waivers") is not None:
        if not isinstance(root["waivers"], str):
            raise InventoryError(path, line_of(root, ["waivers"]), "waivers", "expected a file path")
        inv.waivers = root["waivers"]
    top = [validate_level(root.get("vars"), path=path, root=root, loc=["vars"], host=False)]
    for name, body in _expect_mapping(root.get("groups"), path, root, ["groups"], "groups").items():
        _group(str(name), body, inv, path, root, ["groups", name], [], top)
    _hosts(root.get("hosts"), inv, path, root, ["hosts"], [], top)
    return inv
