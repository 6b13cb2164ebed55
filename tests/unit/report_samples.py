"""Plain-data `RunResult`s shared by the report and CLI unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CHECKS = ["mars.agent.installed", "vss.service.startup", "systemstate.wsb.feature"]


def check(check_id: str, status: CheckStatus, message: str = "", **extra: object) -> CheckResult:
    return CheckResult(check_id=check_id, status=status, message=message or f"{check_id} is {status.value}", **extra)


def host(name: str, status: HostStatus, checks: list[CheckResult] | None = None, message: str = "") -> HostResult:
    return HostResult(
        host=name, address="127.0.1.1", transport="psrp", groups=["dc-a"], status=status, message=message,
        checks=checks or [], started_at=T0, duration_s=1.25,
    )


def sample_result() -> RunResult:
    """Five hosts covering every kind of outcome a report must show."""
    ok = [check(c, CheckStatus.PASS) for c in CHECKS]
    return RunResult(
        run_id="r-0001",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=12.5),
        inventory="inventories/lab.yml",
        playbooks=["system-state-backup"],
        check_ids=CHECKS,
        hosts=[
            host("SRV-OK", HostStatus.COMPLIANT, ok),
            host(
                "SRV-BAD",
                HostStatus.NONCOMPLIANT,
                [
                    check(CHECKS[0], CheckStatus.PASS),
                    check(
                        CHECKS[1], CheckStatus.FAIL, "VSS startup type is Disabled", observed="Disabled",
                        expected="Manual", remediation="Set-Service VSS -StartupType Manual", severity="high",
                    ),
                    check(CHECKS[2], CheckStatus.ERROR, "probe failed: access denied"),
                ],
            ),
            host(
                "SRV-WARN",
                HostStatus.COMPLIANT,
                [
                    check(CHECKS[0], CheckStatus.WARN, "agent older than 2.0.9250"),
                    check(CHECKS[1], CheckStatus.WAIVED, waiver="CHG-42 until 2026-12-31"),
                    check(CHECKS[2], CheckStatus.SKIP, "not a domain controller"),
                ],
            ),
            host("SRV-DOWN", HostStatus.UNREACHABLE, message="connection refused on 127.0.1.9:5985"),
            host("=cmd|calc", HostStatus.AUTH_FAILED, message="credentials rejected (NTLM)"),
        ],
        fleetcheck_version="0.1.0",
    )


def big_result(n: int) -> RunResult:
    """`n` hosts: most compliant, every seventh failing one check."""
    hosts = []
    for i in range(n):
        failing = i % 7 == 0
        checks = [check(c, CheckStatus.FAIL if failing and c == CHECKS[1] else CheckStatus.PASS) for c in CHECKS]
        hosts.append(host(f"SRV{i:04d}", HostStatus.NONCOMPLIANT if failing else HostStatus.COMPLIANT, checks))
    return RunResult(run_id="big", started_at=T0, finished_at=T0 + timedelta(seconds=30), check_ids=CHECKS, hosts=hosts)
