"""The one YAML loader for the files users write: inventory, playbooks and waivers.

Every file a user hands us may be wrong or hostile, so loading is bounded and every mistake
names the file and line (`YamlFileError`, a `UserError`: the CLI exits 2, never a traceback):

- safe tags only, plus Ansible's `!vault` (a `VaultValue` holding its ciphertext, opened only by
  `inventory/vault.py` when a vault password is given; never shown) and `!unsafe` (a plain string);
- mappings load as `MarkedDict` and sequences as `MarkedList`, which remember the line of each
  key and item, so a pydantic error location can be walked back to a line with `line_of`;
- a size cap on the bytes read (a device like /dev/zero is read only up to the cap);
- a budget on the expanded size, counted on the node graph before anything is built, so a
  few hundred bytes of nested aliases ("billion laughs") are refused in milliseconds;
- a nesting depth limit, checked while composing, so deep nesting is an error, not a
  RecursionError;
- YAML merge keys (`<<: *base`) with keys written next to them overriding the merged ones,
  as YAML 1.1 and Ansible define it; a key written twice by hand is still an error;
- documents composed by libyaml when PyYAML has it (4-7x faster than PyYAML's Python
  composer, from a 600-byte waiver file to a 100,000-host inventory), with the same nodes and
  lines; see `_compose_fast`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleetcheck.errors import UserError

#: Bytes read from a file at most; larger input is refused unread.
MAX_BYTES = 20 * 1024 * 1024
#: Values (mapping entries, items, scalars) the document may expand to once aliases are followed.
MAX_NODES = 2_000_000
#: Nesting levels of mappings and sequences, after aliases are followed.
MAX_DEPTH = 100

MERGE_TAG = "tag:yaml.org,2002:merge"
#: Whether libyaml composes the documents (see `_compose_fast`). PyYAML's Python composer took
#: 11 ms for the 7 KB System State Backup playbook and 28 ms for a 200-host inventory, libyaml
#: 2 and 4 ms: together ~7 % of a 200-host run's start-up, paid by every run.
LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))


class YamlFileError(UserError):
    """A YAML file that cannot be loaded; names the file, the line when known, and what to do."""

    def __init__(self, source: str, line: int | None, problem: str, hint: str = "", key: str | None = None) -> None:
        self.source, self.line, self.problem, self.hint, self.key = source, line, problem, hint, key
        where = source + (f", line {line}" if line else "")
        what = f"'{key}': {problem}" if key else problem
        super().__init__(f"{where}: {what}" + (f" ({hint})" if hint else ""))


class VaultValue:
    """An Ansible `!vault` value: ciphertext until a vault password opens it; never shown."""

    def __init__(self, ciphertext: str = "") -> None:
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "<vaulted>"


class MarkedDict(dict[Any, Any]):
    """A dict that knows where it came from (1-based lines of the mapping and of each key)."""

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


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting while composing (PyYAML's composer recurses)."""

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.get_mark()  # where the reader is: at or just past the offending line
                raise _Refused(mark.line + 1, f"the document nests deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.add_constructor("!vault", lambda loader, node: VaultValue(str(loader.construct_scalar(node))))  # type: ignore[arg-type]
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def _compose_fast(text: str) -> Node | None:
    """libyaml's node graph for a well-formed, shallow document; None for anything else.

    PyYAML's pure-Python scanner and composer take most of the time of loading a file (seconds
    for 100,000 hosts); libyaml builds the same `yaml.nodes` with the same marks (lines), tags
    resolved by the same Python resolver. It is used only when nothing can go wrong: a
    nesting pre-pass over libyaml's events (cheap, flat) stops short of MAX_DEPTH, and any
    libyaml error gives None. The caller then composes with the Python loader, whose depth
    check and error messages (file, line, problem) stay the only ones users see.
    """
    if not LIBYAML:
        return None
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
                if depth >= MAX_DEPTH - 1:  # the Python loader decides (and words) the limit
                    return None
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1
        loader = yaml.CSafeLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None


class _Refused(Exception):
    """Internal: a limit was hit at `line`; turned into `YamlFileError` with the source name."""

    def __init__(self, line: int | None, problem: str, hint: str = "", key: str | None = None) -> None:
        super().__init__(problem)
        self.line, self.problem, self.hint, self.key = line, problem, hint, key


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _merge_sources(node: Node) -> list[MappingNode]:
    """The mappings a `<<` value names: one mapping or a sequence of them."""
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode) and all(isinstance(item, MappingNode) for item in node.value):
        return [item for item in node.value if isinstance(item, MappingNode)]
    raise _Refused(_line(node), "a merge key (<<) takes a mapping or a list of mappings")


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, SequenceNode) else []


def _check_expansion(root: Node, max_nodes: int) -> None:
    """Refuse a graph whose expansion exceeds `max_nodes` values or MAX_DEPTH levels, or loops.

    Size and height are memoised per node, so the work is proportional to the text, not to
    the expansion; the recursion itself stops at MAX_DEPTH.
    """
    seen: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def measure(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in seen:
            return seen[key]
        if key in active:
            raise _Refused(_line(node), "an alias refers to a node that contains it (a loop)")
        if depth > MAX_DEPTH:
            raise _Refused(_line(node), f"the document nests deeper than {MAX_DEPTH} levels once aliases are followed")
        active.add(key)
        total, height = 1, 0
        for child in _children(node):
            size, tall = measure(child, depth + 1)
            total, height = total + size, max(height, tall + 1)
        active.discard(key)
        if total > max_nodes:
            raise _Refused(None, f"the document expands to more than {max_nodes} values (YAML aliases?)", "remove the nested aliases")
        if depth + height > MAX_DEPTH:
            raise _Refused(_line(node), f"the document nests deeper than {MAX_DEPTH} levels once aliases are followed")
        seen[key] = (total, height)
        return total, height

    measure(root, 0)


class _Builder:
    """Builds MarkedDict/MarkedList/scalars from a composed, already size-checked node graph."""

    def __init__(self, loader: _Loader, str_keys: bool) -> None:
        self.loader = loader
        self.str_keys = str_keys

    def build(self, node: Node) -> Any:
        if isinstance(node, MappingNode):
            return self.mapping(node)
        if isinstance(node, SequenceNode):
            seq = MarkedList(_line(node))
            for item in node.value:
                seq.append(self.build(item))
                seq.item_lines.append(_line(item))
            return seq
        return self.scalar(node)

    def scalar(self, node: Node) -> Any:
        """A plain value; one YAML would read as a date that cannot exist (2026-13-45) is refused."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            raise _Refused(_line(node), f"{node.value!r} is not a valid {node.tag.rpartition(':')[2]} ({exc})",
                           "quote it to keep it as text") from None

    def key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            raise _Refused(_line(node), "a mapping key must be a plain value")
        key = self.scalar(node)
        if self.str_keys and not isinstance(key, str):
            raise _Refused(_line(node), f"key {key!r} must be text", "quote it")
        try:
            hash(key)
        except TypeError:
            raise _Refused(_line(node), "a mapping key must be a plain value") from None
        return key

    def mapping(self, node: MappingNode) -> MarkedDict:
        out = MarkedDict(_line(node))
        merges: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.extend(_merge_sources(value_node))
                continue
            key = self.key(key_node)
            if key in out:
                raise _Refused(
                    _line(key_node),
                    f"key appears twice in the same mapping (first on line {out.key_lines[key]})",
                    "remove or merge one of them (a duplicate key)",
                    str(key),
                )
            out[key] = self.build(value_node)
            out.key_lines[key] = _line(key_node)
        for source in merges:  # keys written here win; earlier merged mappings win over later ones
            merged = self.mapping(source)
            for key, value in merged.items():
                if key not in out:
                    out[key] = value
                    out.key_lines[key] = merged.key_lines[key]
        return out


def _reader_line(text: str, exc: yaml.reader.ReaderError) -> int:
    return text.count("\n", 0, max(0, exc.position)) + 1


def parse_yaml(text: str, source: str, *, max_nodes: int | None = None, str_keys: bool = False) -> Any:
    """Parse one YAML document from `text`; returns MarkedDict/MarkedList/scalars or None if empty.

    `source` names the file in errors. `str_keys` refuses keys that are not text (a playbook's
    keys are check ids and option names). Raises `YamlFileError`.
    """
    budget = MAX_NODES if max_nodes is None else max_nodes
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise YamlFileError(source, _reader_line(text, exc), _reader_problem(exc), "remove the control character") from None
    try:
        node = _compose_fast(text) or loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, budget)
        return _Builder(loader, str_keys).build(node)
    except _Refused as exc:
        raise YamlFileError(source, exc.line, exc.problem, exc.hint, exc.key) from None
    except yaml.reader.ReaderError as exc:
        raise YamlFileError(source, _reader_line(text, exc), _reader_problem(exc), "remove the control character") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = f"not valid YAML: {exc.problem or exc.context or exc}"
        raise YamlFileError(source, line, problem, "fix the indentation or quoting") from None
    except yaml.YAMLError as exc:
        raise YamlFileError(source, None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    char = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return f"the file holds a control character (#x{char:04x}) that YAML does not allow"


def read_text(path: Path, *, max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of `path`, reading at most `max_bytes` + 1 bytes whatever the file is."""
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlFileError(str(path), None, "file not found", "check the path") from None
    except OSError as exc:
        raise YamlFileError(str(path), None, f"cannot read the file ({exc.strerror})", "check the path") from None
    if len(data) > max_bytes:
        raise YamlFileError(str(path), None, f"file is larger than {max_bytes} bytes", "is this the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlFileError(str(path), line, "file is not UTF-8 text", "save it as UTF-8") from None


def load_yaml(path: Path, *, max_bytes: int = MAX_BYTES, max_nodes: int | None = None, str_keys: bool = False) -> Any:
    """Read and parse the YAML file at `path` within the limits above; raises `YamlFileError`."""
    return parse_yaml(read_text(path, max_bytes=max_bytes), str(path), max_nodes=max_nodes, str_keys=str_keys)


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
