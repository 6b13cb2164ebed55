"""Ansible's inventory data model as the source readers fill it: groups, hosts, vars with origins.

Every value remembers where it was written (`Origin`), so an error or `fleetcheck inventory`
can name the file and line. The rules are Ansible's (inventory/data.py, inventory/group.py):
implicit `all` and `ungrouped`, children that may be named before they are defined, a cycle
is an error, `ansible_group_priority` is a group attribute rather than a variable.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError

#: A range wider than this is refused before anything is expanded (`web[0:99999999]`).
MAX_RANGE_HOSTS = 100_000
#: Hosts one inventory may define, all sources together.
MAX_HOSTS = 200_000
#: Groups one inventory may define.
MAX_GROUPS = 100_000
#: Groups nested deeper than this are refused (Ansible has no limit; a real fleet needs < 10).
MAX_GROUP_DEPTH = 64


def is_template(value: Any) -> bool:
    """A value Ansible would render with Jinja2 (`{{ ... }}` or `{% ... %}`)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@dataclass(frozen=True)
class Origin:
    """Where a value was written: file and (when known) line."""

    path: Path | str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


@dataclass
class Var:
    """One variable value with its origin."""

    value: Any
    origin: Origin
    secret: bool = False  # read from a vault-encrypted file: redacted like a password


@dataclass
class RawGroup:
    name: str
    origin: Origin | None = None
    vars: dict[str, Var] = field(default_factory=dict)
    children: dict[str, None] = field(default_factory=dict)  # ordered set
    parents: dict[str, None] = field(default_factory=dict)
    hosts: dict[str, None] = field(default_factory=dict)
    priority: int = 1
    level: int = 0  # a lower bound of the depth, kept while reading, so a long chain is refused early


@dataclass
class RawHost:
    name: str
    origin: Origin
    vars: dict[str, Var] = field(default_factory=dict)
    groups: dict[str, None] = field(default_factory=dict)  # direct membership, ordered


class RawInventory:
    """Groups and hosts as every source reader adds them (several sources may fill one)."""

    def __init__(self) -> None:
        self.groups: dict[str, RawGroup] = {"all": RawGroup("all"), "ungrouped": RawGroup("ungrouped")}
        self.hosts: dict[str, RawHost] = {}
        self.sources: list[Path] = []
        self.warnings: list[tuple[str, str]] = []  # (kind, detail)

    def add_group(self, name: str, origin: Origin) -> RawGroup:
        if not name:
            raise InventoryError(origin.path, origin.line, None, "empty group name")
        group = self.groups.get(name)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                raise InventoryError(origin.path, origin.line, name, f"more than {MAX_GROUPS} groups")
            group = self.groups[name] = RawGroup(name, origin)
        elif group.origin is None:
            group.origin = origin
        return group

    def add_host(self, name: str, group: str | None, origin: Origin, port: int | None = None) -> RawHost:
        if not name:
            raise InventoryError(origin.path, origin.line, None, "empty host name")
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= MAX_HOSTS:
                raise InventoryError(origin.path, origin.line, None, f"more than {MAX_HOSTS} hosts")
            host = self.hosts[name] = RawHost(name, origin)
            if port is not None:
                host.vars["ansible_port"] = Var(port, origin)
        if group is not None:
            self.groups[group].hosts[name] = None
            host.groups[group] = None
        return host

    def add_child(self, parent: str, child: str, origin: Origin) -> None:
        """`child` under `parent`; a loop back to `parent` is an error naming the line."""
        if child not in self.groups[parent].children:
            self._refuse_cycle(parent, child, origin)
        self.groups[parent].children[child] = None
        self.groups[child].parents[parent] = None
        level = self.groups[child].level = max(self.groups[child].level, self.groups[parent].level + 1)
        if level > MAX_GROUP_DEPTH:
            raise InventoryError(origin.path, origin.line, child, f"groups nest more than {MAX_GROUP_DEPTH} levels deep")

    def _refuse_cycle(self, parent: str, child: str, origin: Origin) -> None:
        """Walk below `child` level by level: reaching `parent` is a cycle; more than
        MAX_GROUP_DEPTH levels is refused here, so a hostile chain costs linear time, not quadratic."""
        cycle = InventoryError(
            origin.path, origin.line, child,
            f"group '{child}' under '{parent}' makes a cycle ({parent} is already inside {child})",
            "a group cannot contain itself, directly or through its children",
        )
        if parent == child:
            raise cycle
        frontier, seen = [child], {child}
        for _ in range(MAX_GROUP_DEPTH):
            below = []
            for group in frontier:
                for name in self.groups[group].children:
                    if name == parent:
                        raise cycle
                    if name not in seen:
                        seen.add(name)
                        below.append(name)
            if not below:
                return
            frontier = below
        raise InventoryError(origin.path, origin.line, child, f"groups nest more than {MAX_GROUP_DEPTH} levels deep")

    def set_group_var(self, group: str, key: str, value: Any, origin: Origin) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise InventoryError(origin.path, origin.line, key, f"expected a whole number, got {value!r}") from None
            return
        self.groups[group].vars[key] = _combined(self.groups[group].vars.get(key), value, origin)

    def set_host_var(self, host: str, key: str, value: Any, origin: Origin) -> None:
        self.hosts[host].vars[key] = _combined(self.hosts[host].vars.get(key), value, origin)

    def reconcile(self) -> None:
        """Ansible's post-processing: top groups go under `all`, group-less hosts into `ungrouped`."""
        for group in self.groups.values():
            if group.name != "all" and not group.parents:
                self.groups["all"].children[group.name] = None
                group.parents["all"] = None
        both = sorted(set(self.groups) & set(self.hosts))
        if both:
            shown = ", ".join(both[:3]) + (f" and {len(both) - 3} more" if len(both) > 3 else "")
            self.warnings.append(("names used for both a group and a host (patterns match both)", shown))
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            direct = set(host.groups) - {"all"}
            if "ungrouped" in direct and len(direct) > 1:
                ungrouped.hosts.pop(host.name, None)
                host.groups.pop("ungrouped", None)
            elif not direct:
                ungrouped.hosts[host.name] = None
                host.groups["ungrouped"] = None


def _combined(old: Var | None, value: Any, origin: Origin) -> Var:
    """Setting a variable twice on one group or host merges mappings (Ansible's set_variable)."""
    if old is not None and isinstance(old.value, dict) and isinstance(value, dict):
        return Var({**old.value, **value}, origin)
    return Var(value, origin)


_ADDRESS_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:\[\]]+(?:\[[^\]]+\][^:\[\]]*)*)):(?P<port>[0-9]+)$")


def split_port(pattern: str) -> tuple[str, int | None]:
    """`host:5986` and `[::1]:5986` carry a port; a bare IPv6 address does not."""
    match = _ADDRESS_PORT.match(pattern)
    if match is None:
        return pattern, None
    return match.group("v6") or match.group("name"), int(match.group("port"))


def range_size(pattern: str) -> int:
    """How many names `pattern` expands to, computed without expanding (for the refusal)."""
    total = 1
    rest = pattern
    while "[" in rest and "]" in rest:
        _, _, after = rest.partition("[")
        inner, _, rest = after.partition("]")
        beg, end, step = _bounds(inner, pattern)
        if beg.isdigit() or not beg:
            count = max(0, (int(end) - int(beg or "0")) // step + 1)
        else:
            count = max(0, (string.ascii_letters.index(end) - string.ascii_letters.index(beg)) // step + 1)
        total *= count
    return total


def _bounds(inner: str, pattern: str) -> tuple[str, str, int]:
    parts = inner.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ValueError(f"host range in '{pattern}' must be [begin:end] or [begin:end:step]")
    beg, end = parts[0], parts[1]
    try:
        step = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise ValueError(f"host range step in '{pattern}' is not a number") from None
    if step < 1:
        raise ValueError(f"host range step in '{pattern}' must be at least 1")
    alpha = len(beg) == 1 and beg in string.ascii_letters and len(end) == 1 and end in string.ascii_letters
    if not alpha and not ((beg.isdigit() or not beg) and end.isdigit()):
        raise ValueError(f"host range in '{pattern}' mixes letters and numbers")
    if alpha and string.ascii_letters.index(beg) > string.ascii_letters.index(end):
        raise ValueError(f"host range in '{pattern}' must have begin <= end")
    if beg.startswith("0") and len(beg) > 1 and len(beg) != len(end):
        raise ValueError(f"host range in '{pattern}' must have equal-length begin and end (zero padding)")
    return beg, end, step


def expand_hostpattern(pattern: str) -> list[str]:
    """Ansible ranges `web[01:20]`, `db-[a:f]`, `n[1:9:2]`, several per name; refused when too wide."""
    if not ("[" in pattern and "]" in pattern and ":" in pattern.partition("[")[2].partition("]")[0]):
        return [pattern]
    size = range_size(pattern)
    if size > MAX_RANGE_HOSTS:
        raise ValueError(f"host range '{pattern}' expands to {size} hosts; the limit is {MAX_RANGE_HOSTS}")
    head, _, after = pattern.partition("[")
    inner, _, tail = after.partition("]")
    beg, end, step = _bounds(inner, pattern)
    if beg and not beg.isdigit():
        i_beg, i_end = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        items = list(string.ascii_letters[i_beg : i_end + 1 : step])
    else:
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        items = [str(i).zfill(width) for i in range(int(beg or "0"), int(end) + 1, step)]
    return [name for item in items for name in expand_hostpattern(head + item + tail)]
