"""Text for `fleetcheck checks` and `fleetcheck explain CHECK_ID` (the CLI only prints it)."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING

from tabulate import tabulate

from fleetcheck.checks.registry import CHECK_ORDER, CHECKS

if TYPE_CHECKING:
    from fleetcheck.playbook import Playbook


def render_checks_table(playbooks: list[Playbook]) -> str:
    """One row per check of the playbooks (or of the registry when none are given)."""
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


def render_explain(check_id: str) -> str:
    """What a built-in check verifies, why it matters, how to fix it, and its parameters.

    Raises KeyError (with close matches in the message) for an unknown id."""
    c = CHECKS.get(check_id)
    if c is None:
        close = difflib.get_close_matches(check_id, CHECK_ORDER, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `fleetcheck checks` for the list"
        raise KeyError(f"unknown check id {check_id!r}{hint}")
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
