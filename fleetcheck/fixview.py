"""Text of `fleetcheck fix`: the plan per host, each batch's before -> after, the closing summary."""

from __future__ import annotations

from collections.abc import Sequence

from fleetcheck.fix import FixResult, HostFix, HostPlan
from fleetcheck.results import HostStatus


def _wrap(text: str, indent: str) -> str:
    return indent + text.replace("\n", "\n" + indent)


def render_plan(plans: Sequence[HostPlan], *, apply: bool) -> str:
    """Per host: what fix will change, what is not enabled, what has no safe fix, what is waived."""
    out: list[str] = []
    for p in plans:
        if p.status not in (HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT):
            out.append(f"{p.host}  {p.status.value}: not checked, nothing planned ({p.message})")
            continue
        if not (p.changes or p.no_fix or p.waived):
            out.append(f"{p.host}  nothing to fix")
            continue
        out.append(f"{p.host}")
        enabled = [c for c in p.changes if c.enabled]
        disabled = [c for c in p.changes if not c.enabled]
        if enabled:
            out.append("  will change:" if apply else "  would change:")
            out += [f"    {c.change.check_id:<20} {c.change.summary}" for c in enabled]
        if disabled:
            out.append("  would change, but not enabled for fixing (playbook: remediate: true):")
            out += [f"    {c.change.check_id:<20} {c.change.summary}" for c in disabled]
        if p.no_fix:
            out.append("  no safe automatic fix:")
            for n in p.no_fix:
                out.append(f"    {n.check_id:<20} {n.reason}")
                if n.remediation:
                    out.append(_wrap(n.remediation, "      "))
        if p.waived:
            out.append("  waived, not fixed: " + ", ".join(p.waived))
    return "\n".join(out) + "\n"


def plan_summary(plans: Sequence[HostPlan]) -> str:
    todo = [p for p in plans if p.to_apply]
    changes = sum(len(p.to_apply) for p in plans)
    not_enabled = sorted({cid for p in plans for cid in p.not_enabled})
    manual = sum(len(p.no_fix) for p in plans)
    line = f"plan: {changes} change(s) on {len(todo)} host(s) enabled for fixing"
    if not_enabled:
        line += f"; not enabled for fixing: {', '.join(not_enabled)}"
    if manual:
        line += f"; {manual} failing check(s) with no safe automatic fix"
    return line + "\n"


def render_batch(number: int, fixes: Sequence[HostFix]) -> str:
    """One applied batch: per host and change, the check's status before -> after and what happened."""
    out = [f"batch {number}: {', '.join(f.host for f in fixes)}"]
    for f in fixes:
        out.append(f"  {f.host}" + (f"  ERROR {f.error}" if f.error else ""))
        for a in f.applied:
            before = f.before.get(a.change.check_id)
            after = f.after.get(a.change.check_id)
            arrow = f"{before.value if before else '?'} -> {after.value if after else '?'}"
            what = a.result + (f": {a.error}" if a.error else "") + ("; restart needed" if a.restart_needed else "")
            out.append(f"    {a.change.check_id:<20} {arrow:<13} {what}")
            out.append(f"      {a.change.summary}")
            if a.error is None and after is not None and after.value != "pass":
                out.append(f"      still {after.value}: {f.after_messages.get(a.change.check_id, '')}")
    return "\n".join(out) + "\n"


def result_summary(result: FixResult) -> str:
    fixes = list(result.hosts.values())
    changed = sum(1 for f in fixes for a in f.applied if a.result == "changed")
    failed_hosts = [f.host for f in fixes if f.failed]
    line = f"fix {result.run_id}: {changed} change(s) made on {len(fixes)} host(s) in {len(result.batches)} batch(es)"
    if failed_hosts:
        line += f"; still failing: {', '.join(failed_hosts)}"
    if any(a.restart_needed for f in fixes for a in f.applied):
        line += "; some hosts need a restart (fix never restarts a host)"
    if result.stopped:
        line += f"\nstopped: {result.stopped}"
    return line + "\n"
