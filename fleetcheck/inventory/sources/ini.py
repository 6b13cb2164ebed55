"""Ansible's INI inventory format, read the way Ansible's `ini` plugin reads it.

Sections `[group]` (hosts), `[group:vars]` (one `key=value` a line) and `[group:children]`;
lines before any section are hosts of `ungrouped`; `#` and `;` start a comment line. Host lines
are split like a shell would (`shlex`, trailing comments dropped) and each value goes through
`ast.literal_eval` (so `port=5985` is a number, `x="1"` is the number 1, `x="'1'"` the string);
a `:vars` value is everything after the first `=`, literal-evaluated too, else kept as text.
A child or a `:vars` section may name a group defined further down; one never defined is an
error naming the line that used it.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import Origin, RawInventory, expand_hostpattern, split_port

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
MAX_LINE = 64 * 1024


_PLAIN_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*|[0-9]+(?:\.[0-9]+){2,}")
_SHELL_SPECIAL = re.compile(r"[\"'\\#]")


def parse_value(text: str) -> Any:
    """Ansible's INI typing: a Python literal when it is one, else the text itself."""
    if len(text) > MAX_LINE:
        return text
    if _PLAIN_WORD.fullmatch(text) and text not in ("True", "False", "None"):
        return text  # a name, a dotted host name or an IPv4 address: literal_eval would refuse it anyway
    if text.isdigit() and (text == "0" or not text.startswith("0")):
        return int(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list | set):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is ... or isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def read_ini(text: str, path: Path, inv: RawInventory) -> None:
    """Add one INI file's groups, hosts and vars to `inv`; errors carry file and line."""
    pending: dict[str, tuple[int, str, list[str]]] = {}  # group -> (line, state, parents)
    group, state = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if len(line) > MAX_LINE:
            raise InventoryError(path, number, None, f"line longer than {MAX_LINE} characters")
        origin = Origin(path, number)
        match = _SECTION.match(line)
        if match:
            group, kind = match.group(1), match.group(2) or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise InventoryError(path, number, f"[{group}:{kind}]", f"unknown section type '{kind}'",
                                     "use [NAME], [NAME:vars] or [NAME:children]")
            state = kind
            if group not in inv.groups:
                if state == "vars" and group not in pending:
                    pending[group] = (number, "vars", [])
                inv.add_group(group, origin)
            elif inv.groups[group].origin is None:
                inv.groups[group].origin = origin
            if group in pending and state != "vars":
                _settle(inv, group, pending, path)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(path, number, None, f"invalid section header '{line}'",
                                 "no spaces inside the brackets; [NAME], [NAME:vars] or [NAME:children]")
        if state == "hosts":
            _host_line(line, origin, group, inv)
        elif state == "vars":
            if "=" not in line:
                raise InventoryError(path, number, None, f"expected key=value, got '{line}'")
            key, _, value = (part.strip() for part in line.partition("="))
            inv.set_group_var(group, key, parse_value(value), origin)
        else:
            child_match = _GROUP_NAME.match(line)
            if child_match is None:
                raise InventoryError(path, number, None, f"expected a group name, got '{line}'")
            child = child_match.group(1)
            if child not in inv.groups:
                if child in pending:
                    pending[child][2].append(group)
                else:
                    pending[child] = (number, "children", [group])
            else:
                inv.add_child(group, child, origin)
    for name, (number, kind, parents) in pending.items():
        if kind == "vars":
            raise InventoryError(path, number, f"[{name}:vars]", f"section for group '{name}', which is never defined",
                                 f"add a [{name}] section with its hosts, or fix the name")
        raise InventoryError(path, number, name, f"[{parents[-1]}:children] names group '{name}', which is never defined",
                             f"add a [{name}] section, or fix the name")


def _settle(inv: RawInventory, group: str, pending: dict[str, tuple[int, str, list[str]]], path: Path) -> None:
    number, kind, parents = pending.pop(group)
    if kind != "children":
        return
    origin = Origin(path, number)
    for parent in parents:
        inv.add_child(parent, group, origin)
        if parent in pending and pending[parent][1] == "children":
            _settle(inv, parent, pending, path)


def _host_line(line: str, origin: Origin, group: str, inv: RawInventory) -> None:
    try:
        # shlex is slow; a line without quotes, backslashes or '#' splits the same on whitespace
        tokens = shlex.split(line, comments=True) if _SHELL_SPECIAL.search(line) else line.split()
    except ValueError as exc:
        raise InventoryError(origin.path, origin.line, None, f"cannot split the host line: {exc}",
                             "check the quotes") from None
    if not tokens:
        return
    pattern, port = split_port(tokens[0])
    if tokens[0].endswith(":") and port is None:
        raise InventoryError(origin.path, origin.line, tokens[0], "a host name cannot end in ':'",
                             "write host:PORT or drop the colon")
    if pattern.strip() == "---":
        raise InventoryError(origin.path, origin.line, None, "'---' starts a YAML document, not an INI host",
                             "name the file .yml")
    try:
        names = expand_hostpattern(pattern)
    except ValueError as exc:
        raise InventoryError(origin.path, origin.line, tokens[0], str(exc)) from None
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise InventoryError(origin.path, origin.line, token, "expected key=value after the host name",
                                 "quote values that contain spaces: key='a b'")
        key, _, value = token.partition("=")
        variables[key] = parse_value(value)
    for name in names:
        inv.add_host(name, group, origin, port)
        for key, value in variables.items():
            inv.set_host_var(name, key, value, origin)
