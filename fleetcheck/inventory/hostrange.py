"""Ansible host ranges (`web[01:20].corp`, `db[a:f]`), counted before they are built.

`web[0:99999999]` or `w[0:9999]x[0:999]` used to be built in full (gigabytes, a minute)
before any limit was checked. `count_range` computes the size arithmetically, so every
caller can refuse a pattern, or an inventory, before a single name exists.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")
#: Hosts one range pattern may expand to.
MAX_RANGE_HOSTS = 10_000
#: Hosts one inventory may hold.
MAX_HOSTS = 100_000


def _bounds(match: re.Match[str], pattern: str) -> range:
    start, end, step_text = match.group(1), match.group(2), match.group(3)
    step = max(int(step_text), 1) if step_text else 1
    if start.isdigit() and end.isdigit():
        return range(int(start), int(end) + 1, step)
    if start.isalpha() and end.isalpha():
        return range(ord(start), ord(end) + 1, step)
    raise ValueError(f"cannot expand host range in {pattern!r}: mixes letters and digits")


def count_range(pattern: str) -> int:
    """How many host names `pattern` expands to (1 without a range), without building them."""
    total = 1
    for match in _RANGE.finditer(pattern):
        total *= len(_bounds(match, pattern))
    return total


def expand_host_pattern(name: str, limit: int = MAX_RANGE_HOSTS) -> list[str]:
    """`web[01:03].corp` -> web01.corp, web02.corp, web03.corp; refuses more than `limit` names."""
    count = count_range(name)
    if count > limit:
        raise ValueError(f"host range in {name!r} expands to {count} hosts, more than {limit}")
    return _expand(name)


def _expand(name: str) -> list[str]:
    match = _RANGE.search(name)
    if match is None:
        return [name]
    bounds = _bounds(match, name)
    start = match.group(1)
    if start.isdigit():
        width = len(start) if start.startswith("0") else 0
        items = [str(i).zfill(width) for i in bounds]
    else:
        items = [chr(c) for c in bounds]
    head, tail = name[: match.start()], name[match.end() :]
    return [expanded for item in items for expanded in _expand(head + item + tail)]
