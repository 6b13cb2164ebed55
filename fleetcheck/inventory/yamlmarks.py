"""YAML loading that remembers line numbers, so a bad inventory error can name the line.

Mappings load as `MarkedDict` (a plain dict plus the line of the mapping and of each key);
`line_of(data, loc)` walks a pydantic error location back to the nearest known line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleetcheck.inventory.errors import InventoryError

MAX_INVENTORY_BYTES = 20 * 1024 * 1024


class VaultValue:
    """An Ansible `!vault` value: ciphertext until a vault password decrypts it; never shown."""

    def __init__(self, ciphertext: str = "") -> None:
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "<vaulted>"


class _Loader(yaml.SafeLoader):
    """SafeLoader that tolerates Ansible's `!vault` and `!unsafe` tags."""


_Loader.add_constructor("!vault", lambda loader, node: VaultValue(str(loader.construct_scalar(node))))  # type: ignore[arg-type]
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


class MarkedDict(dict[Any, Any]):
    """A dict that knows where it came from (1-based lines)."""

    line: int = 0
    key_lines: dict[Any, int]

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.key_lines = {}


class MarkedList(list[Any]):
    """A list that knows the line of each item."""

    line: int = 0
    item_lines: list[int]

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.item_lines = []


MAX_NODES = 2_000_000  # aliases can make a small file expand exponentially ("billion laughs")


def _build(loader: _Loader, node: Node, path: Path, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise InventoryError(path, None, None, f"the document expands to more than {MAX_NODES} values (YAML aliases?)")
    line = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = MarkedDict(line)
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise InventoryError(path, key_node.start_mark.line + 1, None, "a mapping key must be a plain value")
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise InventoryError(
                    path,
                    key_node.start_mark.line + 1,
                    str(key),
                    f"key appears twice in the same mapping (first on line {out.key_lines[key]})",
                    "remove or merge one of them",
                )
            out[key] = _build(loader, value_node, path, budget)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, SequenceNode):
        seq = MarkedList(line)
        for item in node.value:
            seq.append(_build(loader, item, path, budget))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    return loader.construct_object(node, deep=True)


def load_marked(path: Path) -> Any:
    """Parse one YAML document keeping lines; syntax errors become `InventoryError`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InventoryError(path, None, None, f"cannot read the file ({exc.strerror})") from None
    if size > MAX_INVENTORY_BYTES:
        raise InventoryError(path, None, None, f"file is {size} bytes; the limit is {MAX_INVENTORY_BYTES}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InventoryError(path, None, None, "file is not UTF-8 text", "save it as UTF-8") from None
    except OSError as exc:
        raise InventoryError(path, None, None, f"cannot read the file ({exc.strerror})") from None
    return parse_marked(text, path)


def parse_marked(text: str, path: Path) -> Any:
    """`load_marked` for text already in memory (a decrypted vault file, for one)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(loader, node, path, [MAX_NODES])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or str(exc)
        raise InventoryError(path, line, None, f"YAML syntax error: {what}", "fix the indentation or quoting") from None
    except yaml.YAMLError as exc:
        raise InventoryError(path, None, None, f"YAML error: {exc}") from None
    finally:
        loader.dispose()


def line_of(data: Any, loc: Sequence[Any]) -> int | None:
    """Line of the deepest element of `loc` that exists in `data` (None when unknown)."""
    line: int | None = getattr(data, "line", None) or None
    node = data
    for part in loc:
        if isinstance(node, MarkedDict) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, MarkedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line
