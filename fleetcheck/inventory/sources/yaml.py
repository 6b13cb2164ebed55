"""Ansible's YAML inventory format (top-level keys are groups; each has hosts, children, vars).

Read the way Ansible's `yaml` plugin reads it: a group may appear in several places and its
pieces combine; `children` may name a group defined elsewhere in the file; `host:port` sets
`ansible_port`; a section given as one string is a one-entry mapping; sections are applied in
the order they are written. One difference: a key other than hosts/children/vars in a group is
an error here (Ansible warns and skips it), because a misspelled `host:` silently drops every
host below it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import (
    MAX_GROUP_DEPTH,
    Origin,
    RawInventory,
    expand_hostpattern,
    split_port,
)

GROUP_KEYS = ("hosts", "children", "vars")


def _line(mapping: Any, key: Any) -> int | None:
    lines = getattr(mapping, "key_lines", None)
    if lines and key in lines:
        return int(lines[key])
    line = getattr(mapping, "line", None)
    return int(line) if line else None


def read_yaml(data: Any, path: Path, inv: RawInventory) -> None:
    """Add an Ansible YAML inventory document (already loaded with lines) to `inv`."""
    if not isinstance(data, dict):
        raise InventoryError(path, getattr(data, "line", None), None, "expected a mapping of groups at the top level")
    for name, body in data.items():
        _group(str(name), body, Origin(path, _line(data, name)), path, inv, 0)


def _section(body: Any, key: str, name: str, path: Path) -> dict[Any, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if isinstance(value, str):
        return {value: None}
    if not isinstance(value, dict):
        raise InventoryError(path, _line(body, key), f"{name}.{key}", f"expected a mapping, got {type(value).__name__}",
                             "write each entry as 'name:' on its own line")
    return value


def _group(name: str, body: Any, origin: Origin, path: Path, inv: RawInventory, depth: int) -> None:
    if depth > MAX_GROUP_DEPTH:
        raise InventoryError(path, origin.line, name, f"groups nest more than {MAX_GROUP_DEPTH} levels deep")
    if body is not None and not isinstance(body, dict):
        raise InventoryError(path, origin.line, name, f"expected a group (hosts, children, vars), got {body!r}"[:200])
    inv.add_group(name, origin)
    if not body:
        return
    for key in body:
        if key not in GROUP_KEYS:
            close = difflib.get_close_matches(str(key), GROUP_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: hosts, children, vars"
            raise InventoryError(path, _line(body, key), f"{name}.{key}", "unknown key in an Ansible group", hint)
    for key in body:
        if key == "vars":
            variables = _section(body, "vars", name, path)
            for var, value in variables.items():
                inv.set_group_var(name, str(var), value, Origin(path, _line(variables, var)))
        elif key == "children":
            children = _section(body, "children", name, path)
            for child, child_body in children.items():
                child_origin = Origin(path, _line(children, child))
                _group(str(child), child_body, child_origin, path, inv, depth + 1)
                inv.add_child(name, str(child), child_origin)
        else:
            _hosts(_section(body, "hosts", name, path), name, path, inv)


def _hosts(hosts: dict[Any, Any], group: str, path: Path, inv: RawInventory) -> None:
    for pattern, entry in hosts.items():
        where = Origin(path, _line(hosts, pattern))
        if entry is not None and not isinstance(entry, dict):
            raise InventoryError(path, where.line, str(pattern), "expected the host's variables as a mapping",
                                 "write 'host:' alone, or 'host: {ansible_host: ...}'")
        host_pattern, port = split_port(str(pattern))
        try:
            names = expand_hostpattern(host_pattern)
        except ValueError as exc:
            raise InventoryError(path, where.line, str(pattern), str(exc)) from None
        for host in names:
            inv.add_host(host, group, where, port)
            for key, value in (entry or {}).items():
                inv.set_host_var(host, str(key), value, Origin(path, _line(entry, key)))
