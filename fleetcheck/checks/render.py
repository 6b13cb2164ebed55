"""Text for `fleetcheck checks` and `fleetcheck explain CHECK_ID` (the CLI only prints it)."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING

from fleetcheck.checks.registry import CHECK_ORDER, CHECKS

if TYPE_CHECKING:
    from fleetcheck.playbook import Playbook


def render_checks_table(playbooks: list[Playbook]) -> str:
    """One row per check of the playbooks (or of the registry when none are given)."""
    from tabulate import tabulate  # with wcwidth, 20 ms that only `fleetcheck checks` needs

    rows: list[list[str]] = []
    if not playbooks:
        for cid in CHECK_ORDER:
            c = CHECKS[cid]
            rows.append([cid, "-", c.severity, c.family, ",".join(c.tags), c.title])
        return tabulate(rows, headers=["id", "enabled", "severity", "family", "tags", "title"], tablefmt="simple")
    for pb in playbooks:
        for s in pb.checks.values():
            c = CHECKS[s.id]
            rows.append([s.id, "yes" if s.enabled else "no", s.severity, c.family, ",".join(s.tags), c.title, pb.name])
        for cc in pb.custom_checks:
            rows.append([cc.id, "yes" if cc.enabled else "no", cc.severity, "custom", ",".join(cc.tags), cc.title or cc.id, pb.name])
    return tabulate(rows, headers=["id", "enabled", "severity", "family", "tags", "title", "playbook"], tablefmt="simple")


def resolve_check_ref(ref: str, order: list[str] | None = None) -> str:
    """A check id from what a user types: the id in any case, or the number the table shows.

    Numbers count in `order` (a playbook's check order; default: the registry's, which is the
    default playbook's). Raises KeyError with close matches or the valid range.
    """
    order = order or CHECK_ORDER
    text = ref.strip()
    if text.isdigit():
        number = int(text)
        if 1 <= number <= len(order):
            return order[number - 1]
        raise KeyError(f"no check number {number}: the table numbers checks 1 to {len(order)}")
    if text in CHECKS:
        return text
    by_lower = {cid.lower(): cid for cid in [*order, *CHECK_ORDER]}
    if text.lower() in by_lower:
        return by_lower[text.lower()]
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else "; run `fleetcheck checks` for the list"
    raise KeyError(f"unknown check id {ref!r}{hint}")


def render_explain(check_id: str, order: list[str] | None = None) -> str:
    """What a built-in check verifies, why it matters, how to fix it, and its parameters.

    `check_id` may be the table's number or the id in any case (see `resolve_check_ref`).
    Raises KeyError (with close matches in the message) for an unknown id."""
    resolved = resolve_check_ref(check_id, order)
    c = CHECKS.get(resolved)
    if c is None:
        raise KeyError(f"{resolved!r} is a custom check of a playbook: see the playbook file for what it does")
    defaults = c.params().model_dump()
    lines = [
        f"{c.id}: {c.title}",
        f"family: {c.family}    default severity: {c.severity}    tags: {', '.join(c.tags) or '-'}",
        f"probes: {', '.join(c.probes) or '-'}",
        "",
        "What it verifies:",
        f"  {c.verifies}",
        "",
        "Why it matters for system state backup:",
        f"  {c.why}",
        "",
        "How to fix:",
        f"  {c.fix}",
    ]
    if defaults:
        lines += ["", "Parameters (playbook: checks." + c.id + ".params) and defaults:"]
        lines += [f"  {k}: {json.dumps(v)}" for k, v in defaults.items()]
    return "\n".join(lines) + "\n"
