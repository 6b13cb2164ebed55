"""A synthetic fleet result that mimics what the lab produces (statuses, messages, observed values).

Used by the browser test and the size/speed measurement, so they do not need the lab running.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from fleetcheck.checks.registry import CHECK_ORDER
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

#: The real check ids, so the synthetic page looks like a real run's.
CHECK_IDS = list(CHECK_ORDER)

#: Per check: probability of failing on a host, and a realistic observed value on failure.
FAIL_RATE = {
    "wsb-feature": 0.06,
    "wsb-last-job": 0.04,
    "svi-permission": 0.02,
    "service-vss": 0.03,
    "dotnet-version": 0.05,
    "mars-agent-version": 0.08,
    "scratch-free-space": 0.03,
    "vss-writers": 0.02,
}
UNCHECKED = [
    (HostStatus.UNREACHABLE, "connection refused (tcp 5986)", "ConnectionRefusedError"),
    (HostStatus.TIMEOUT, "no answer within 120 s", "TimeoutError"),
    (HostStatus.AUTH_FAILED, "401 Unauthorized: NTLM rejected the credentials", "AuthenticationError"),
]


def _observed(check_id: str, failing: bool, rng: random.Random) -> object:
    if check_id == "wsb-feature":
        return {"name": "Windows-Server-Backup", "install_state": "Available" if failing else "Installed"}
    if check_id == "dotnet-version":
        return {"release": 394802 if failing else 528040, "version": "4.6.2" if failing else "4.8"}
    if check_id == "mars-agent-version":
        return {"version": "2.0.9145.0" if failing else "2.0.9302.0"}
    if check_id == "scratch-free-space":
        return {"path": r"C:\Program Files\Microsoft Azure Recovery Services Agent\Scratch",
                "free_pct": round(1 + 3 * rng.random() if failing else 12 + 58 * rng.random(), 1)}
    if check_id.startswith("service-"):
        name = check_id.removeprefix("service-")
        return {"name": name, "start_type": "Disabled" if failing else "Manual", "status": "Stopped"}
    if check_id == "vss-writers":
        return [{"writer": "System Writer", "state": "[8] Failed" if failing else "[1] Stable",
                 "last_error": "Timed out" if failing else "No error"}]
    return {"ok": not failing}


def make_run(
    n_hosts: int,
    seed: int = 7,
    started_at: datetime | None = None,
    run_id: str | None = None,
    unchecked_rate: float = 0.02,
    day: int = 0,
    flip_rate: float = 0.004,
) -> RunResult:
    """A deterministic run of `n_hosts` hosts (same seed, same fleet).

    `day` > 0 gives the same fleet some nights later: a few check results flipped (new
    failures and fixes) and different hosts unreachable, like a real fleet night to night.
    """
    rng = random.Random(seed)
    night = random.Random(seed * 7919 + day)
    start = started_at or datetime(2026, 11, 23, 2, 0, tzinfo=UTC) + timedelta(days=day)
    hosts = []
    for i in range(n_hosts):
        name = f"srv-{['fra', 'ams', 'par', 'lon'][i % 4]}-{i:04d}"
        groups = [["web", "sql", "file", "dc"][i % 4], "prod" if i % 5 else "legacy"]
        checks = []
        for cid in CHECK_IDS:
            # Every random draw happens whatever the outcome, so a flip never shifts the rest of the fleet.
            base, warn, flip = rng.random(), rng.random(), night.random()
            failing = base < FAIL_RATE.get(cid, 0.0)
            if day and flip < flip_rate:
                failing = not failing
            status = CheckStatus.FAIL if failing else CheckStatus.PASS
            if cid == "wsb-last-job" and not failing and warn < 0.05:
                status = CheckStatus.WARN
            checks.append(CheckResult(
                check_id=cid,
                status=status,
                message=f"{cid}: {'not as required' if failing else 'as required'}",
                observed=_observed(cid, failing, rng),
                expected="as documented for MARS system state backup",
                remediation=f"See the playbook entry for {cid}." if failing else "",
            ))
        duration = round(rng.uniform(0.3, 2.5), 2)
        if night.random() < unchecked_rate:
            status, message, err = night.choice(UNCHECKED)
            hosts.append(HostResult(host=name, address=f"10.{i // 250}.{i % 250}.10", transport="psrp",
                                    groups=groups, status=status, message=message, error_type=err,
                                    started_at=start, duration_s=120.0 if status == HostStatus.TIMEOUT else 0.4))
            continue
        bad = any(c.status == CheckStatus.FAIL for c in checks)
        hosts.append(HostResult(host=name, address=f"10.{i // 250}.{i % 250}.10", transport="psrp",
                                groups=groups, status=HostStatus.NONCOMPLIANT if bad else HostStatus.COMPLIANT,
                                checks=checks, started_at=start, duration_s=duration))
    return RunResult(
        run_id=run_id or f"{start:%Y%m%dT%H%M%SZ}-{seed:04d}-{day}",
        started_at=start,
        finished_at=start + timedelta(seconds=42),
        inventory="inventories/prod.yml",
        playbooks=["system-state-backup"],
        check_ids=list(CHECK_IDS),
        hosts=hosts,
        fleetcheck_version="0.1.0",
    )
