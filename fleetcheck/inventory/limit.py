"""`--limit` patterns as Ansible reads them: names, globs, groups, `~regex`, `a:b`, `a:&b`, `a:!b`.

Host names and addresses match in any case (Windows and DNS names are case-insensitive:
`--limit lab-0001` selects `LAB-0001`); group names keep Ansible's exact matching.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

from fleetcheck.errors import UserError
from fleetcheck.inventory.model import Host


class LimitError(UserError, ValueError):
    """A pattern that is malformed or selects nothing."""


def _split(pattern: str) -> list[str]:
    terms = [t.strip() for t in re.split(r"[:,]", pattern) if t.strip()]
    if not terms:
        raise LimitError("--limit is empty")
    return terms


def _match_term(term: str, hosts: Sequence[Host], groups: Mapping[str, list[str]]) -> set[str]:
    if term in ("all", "*"):
        return {h.name for h in hosts}
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise LimitError(f"--limit '{term}': bad regular expression ({exc})") from None
        folded = re.compile(term[1:], re.IGNORECASE)
        return {h.name for h in hosts if folded.search(h.name)} | {
            n for g, members in groups.items() if regex.search(g) for n in members
        }
    low = term.lower()
    found = {
        h.name for h in hosts if fnmatch.fnmatchcase(h.name.lower(), low) or fnmatch.fnmatchcase(h.address.lower(), low)
    }
    for group, members in groups.items():
        if fnmatch.fnmatchcase(group, term):
            found.update(members)
    return found


def apply_limit(hosts: Sequence[Host], groups: Mapping[str, list[str]], pattern: str | None) -> list[Host]:
    """Hosts selected by `pattern`, in inventory order; a selection of nobody is an error."""
    if not pattern:
        return list(hosts)
    union: set[str] = set()
    positives = 0
    intersections: list[set[str]] = []
    exclusions: set[str] = set()
    for term in _split(pattern):
        if term.startswith("!"):
            exclusions |= _match_term(term[1:], hosts, groups)
        elif term.startswith("&"):
            intersections.append(_match_term(term[1:], hosts, groups))
        else:
            positives += 1
            union |= _match_term(term, hosts, groups)
    selected = union if positives else {h.name for h in hosts}
    for other in intersections:
        selected &= other
    selected -= exclusions
    checkable = selected & {h.name for h in hosts}
    if selected and not checkable:  # group members that an Ansible inventory lists but fleetcheck skips
        shown = ", ".join(sorted(selected)[:5]) + (f" and {len(selected) - 5} more" if len(selected) > 5 else "")
        raise LimitError(f"--limit '{pattern}' matches only hosts that are skipped (not Windows remoting): {shown}")
    if not checkable:
        known = ", ".join(sorted(groups)[:10]) or "none"
        raise LimitError(f"--limit '{pattern}' matches no host (groups: {known})")
    return [h for h in hosts if h.name in checkable]
