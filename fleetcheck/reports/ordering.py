"""Worst first, the same way in every report: hosts we could not check, then hosts by their most
severe failing check, then by how many checks fail; checks by severity, then by failing hosts.

Severity is the playbook's (carried on each `CheckResult`); a check id seen in no result falls
back to the registry's default so the per-check summary can still label it.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetcheck.results import FAILING, UNCHECKED_STATUSES, CheckResult, CheckStatus, HostResult, RunResult

#: Higher is worse. Unknown severities (custom checks with odd values) count as medium.
SEVERITY_RANK: dict[str, int] = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
SEVERITY_LETTER: dict[str, str] = {"critical": "C", "high": "H", "medium": "M", "low": "L", "info": "I"}
#: Statuses that make a host noncompliant (warn and waived do not): the result policy's.
FAILING_STATUSES = FAILING

#: Among hosts we could not check: the ones an admin can act on first.
UNCHECKED_RANK = {"protocol_error": 0, "auth_failed": 1, "unreachable": 2, "timeout": 3, "unsupported": 4}


def severity_rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity.lower(), SEVERITY_RANK["medium"])


def severity_letter(severity: str) -> str:
    return SEVERITY_LETTER.get(severity.lower(), "M")


def severity_legend() -> str:
    return "Severity: " + "  ".join(f"{letter} {name}" for name, letter in SEVERITY_LETTER.items())


def failing_checks(host: HostResult) -> list[CheckResult]:
    """The host's failing checks, most severe first (stable within one severity)."""
    bad = [c for c in host.checks if c.status in FAILING_STATUSES]
    return sorted(bad, key=lambda c: -severity_rank(c.severity))


def worst_severity(checks: Iterable[CheckResult]) -> str | None:
    """The most severe severity among `checks`, or None when there are none."""
    best: str | None = None
    for check in checks:
        if best is None or severity_rank(check.severity) > severity_rank(best):
            best = check.severity
    return best


def host_sort_key(host: HostResult) -> tuple[int, int, int, int, int, str]:
    """Unchecked hosts, then hosts with failing checks (most severe, then most), then warnings, then clean."""
    if host.status in UNCHECKED_STATUSES:
        return (0, UNCHECKED_RANK.get(host.status.value, 5), 0, 0, 0, host.host.lower())
    bad = [c for c in host.checks if c.status in FAILING_STATUSES]
    warns = sum(1 for c in host.checks if c.status == CheckStatus.WARN)
    if bad:
        worst = worst_severity(bad) or "medium"
        return (1, -severity_rank(worst), -len(bad), -warns, 0, host.host.lower())
    return (2 if warns else 3, 0, 0, -warns, 0, host.host.lower())


def sorted_hosts(result: RunResult) -> list[HostResult]:
    return sorted(result.hosts, key=host_sort_key)


def check_severities(result: RunResult) -> dict[str, str]:
    """check id -> severity, from the results (the playbook's choice) or the registry's default."""
    found: dict[str, str] = {}
    for host in result.hosts:
        for check in host.checks:
            seen = found.get(check.check_id)
            # the same severity on every host is the rule: compare ranks only when they differ
            if seen is None or (check.severity != seen and severity_rank(check.severity) > severity_rank(seen)):
                found[check.check_id] = check.severity
    missing = [cid for cid in result.check_ids if cid not in found]
    if missing:
        from fleetcheck.checks.registry import CHECKS

        for cid in missing:
            cdef = CHECKS.get(cid)
            found[cid] = cdef.severity if cdef is not None else "medium"
    return found


def check_titles(ids: Iterable[str]) -> dict[str, str]:
    """check id -> human title from the registry (custom checks: their id)."""
    from fleetcheck.checks.registry import CHECKS

    return {cid: (CHECKS[cid].title if cid in CHECKS else cid) for cid in ids}
