"""The runner's orchestration with fake transports: concurrency, deadlines, retries, journal, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from pypsrp.exceptions import AuthenticationError

from fleetcheck.inventory.model import Host
from fleetcheck.journal import read_journal
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult
from fleetcheck.runner import Plan, RunEvent, RunOptions, exit_code, run_fleet, status_from_checks
from fleetcheck.transports.base import ScriptOutput, Transport

PLAN = Plan(script="# fleetcheck:bundle=v1", args_json="{}", playbook_names=["pb"])


def _hosts(n: int, prefix: str = "H") -> list[Host]:
    return [
        Host(name=f"{prefix}{i:03d}", address=f"127.0.9.{i + 1}", scheme="http", username="u", password=SecretStr("pw-123"))
        for i in range(n)
    ]


class FakeTransport(Transport):
    """Behaviour per host name: 'auth', 'hang', 'reset-once', 'reset'; tracks concurrency."""

    name: ClassVar[str] = "psrp"

    def __init__(self, behaviour: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self.behaviour = behaviour or {}
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.calls: dict[str, int] = {}
        self.timeouts: list[float] = []

    async def run(self, host: Any, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        self.calls[host.name] = self.calls.get(host.name, 0) + 1
        self.timeouts.append(timeout)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            kind = self.behaviour.get(host.name, "auth")
            if kind == "auth":
                raise AuthenticationError("Failed to authenticate the user u with ntlm")
            if kind == "hang":
                await asyncio.sleep(3600)
            if kind == "reset" or (kind == "reset-once" and self.calls[host.name] == 1):
                raise ConnectionResetError(104, "Connection reset by peer")
            if kind == "reset-once":
                raise AuthenticationError("second attempt reached auth")
            raise AssertionError(kind)
        finally:
            self.active -= 1


def _opts(t: FakeTransport, **kw: Any) -> RunOptions:
    return RunOptions(transports={"psrp": t}, **kw)


async def test_forks_bound_concurrency_and_every_host_gets_a_row() -> None:
    t = FakeTransport(delay=0.05)
    run = await run_fleet(_hosts(30), [], _opts(t, forks=7), plan=PLAN)
    assert len(run.hosts) == 30
    assert t.peak == 7
    assert {h.status for h in run.hosts} == {HostStatus.AUTH_FAILED}
    assert exit_code(run) == 3


async def test_auth_is_never_retried_but_reset_is() -> None:
    t = FakeTransport({"H000": "auth", "H001": "reset-once", "H002": "reset"})
    run = await run_fleet(_hosts(3), [], _opts(t, retries=2, backoff=0.01), plan=PLAN)
    by = {h.host: h for h in run.hosts}
    assert (by["H000"].attempts, t.calls["H000"]) == (1, 1)
    assert by["H001"].attempts == 2 and by["H001"].status is HostStatus.AUTH_FAILED
    assert by["H002"].attempts == 3 and by["H002"].status is HostStatus.UNREACHABLE
    assert by["H002"].message == "connection reset by 127.0.9.3:5985"


async def test_hang_costs_the_deadline_and_retries_share_it() -> None:
    t = FakeTransport({"H000": "hang"})
    t0 = time.monotonic()
    run = await run_fleet(_hosts(1), [], _opts(t, timeout=0.6), plan=PLAN)
    elapsed = time.monotonic() - t0
    (h,) = run.hosts
    assert h.status is HostStatus.TIMEOUT
    assert h.message == "no answer within 0.6 s"
    assert elapsed < 0.6 + 1.5  # deadline + grace
    assert t.timeouts[0] <= 0.6


async def test_timeout_none_uses_host_timeout() -> None:
    t = FakeTransport({"H000": "hang"})
    host = _hosts(1)[0].model_copy(update={"timeout": 0.3})
    run = await run_fleet([host], [], _opts(t, timeout=None), plan=PLAN)
    assert run.hosts[0].message == "no answer within 0.3 s"


async def test_journal_keeps_finished_hosts_when_cancelled(tmp_path: Path) -> None:
    behaviour = {f"H{i:03d}": "auth" for i in range(5)} | {f"H{i:03d}": "hang" for i in range(5, 10)}
    t = FakeTransport(behaviour)
    journal = tmp_path / "run.jsonl"
    events: list[RunEvent] = []
    task = asyncio.create_task(
        run_fleet(_hosts(10), [], _opts(t, forks=10, timeout=60, journal=journal, on_event=events.append), plan=PLAN)
    )
    while sum(1 for e in events if e.kind == "host_finished") < 5:
        await asyncio.sleep(0.01)
    task.cancel()
    run = await task  # returns the partial result instead of raising
    assert run.interrupted and exit_code(run) == 4
    assert sorted(h.host for h in run.hosts) == [f"H{i:03d}" for i in range(5)]
    back = read_journal(journal)
    assert back.run_id == run.run_id and back.interrupted
    assert sorted(h.host for h in back.hosts) == [f"H{i:03d}" for i in range(5)]
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert lines[0]["record"] == "run" and lines[-1]["record"] == "end"
    assert "pw-123" not in journal.read_text()
    assert events[-1].kind == "run_finished"


async def test_stop_event_stops_like_ctrl_c() -> None:
    t = FakeTransport({f"H{i:03d}": "hang" for i in range(4)})
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    t0 = time.monotonic()
    run = await run_fleet(_hosts(4), [], _opts(t, timeout=60, stop=stop), plan=PLAN)
    assert run.interrupted and run.hosts == []
    assert time.monotonic() - t0 < 3


def _c(cid: str, status: CheckStatus) -> CheckResult:
    return CheckResult(check_id=cid, status=status, message="m")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([CheckStatus.PASS, CheckStatus.WARN, CheckStatus.SKIP, CheckStatus.WAIVED], HostStatus.COMPLIANT),
        ([CheckStatus.PASS, CheckStatus.FAIL], HostStatus.NONCOMPLIANT),
        ([CheckStatus.PASS, CheckStatus.ERROR], HostStatus.NONCOMPLIANT),
        ([CheckStatus.UNKNOWN], HostStatus.NONCOMPLIANT),
        ([], HostStatus.COMPLIANT),
    ],
)
def test_status_from_checks(statuses: list[CheckStatus], expected: HostStatus) -> None:
    status, _ = status_from_checks([_c(f"c{i}", s) for i, s in enumerate(statuses)])
    assert status is expected


def test_status_message_names_the_failing_checks() -> None:
    _, msg = status_from_checks([_c("a", CheckStatus.FAIL), _c("b", CheckStatus.ERROR), _c("c", CheckStatus.FAIL)])
    assert msg == "fail: a, c; error: b"
    _, ok = status_from_checks([_c("a", CheckStatus.PASS), _c("b", CheckStatus.WARN)])
    assert ok == "2 checks passed, 1 warning"


def _run(*statuses: HostStatus, interrupted: bool = False) -> RunResult:
    from datetime import UTC, datetime

    hosts = [HostResult(host=f"h{i}", status=s) for i, s in enumerate(statuses)]
    return RunResult(run_id="r", started_at=datetime.now(UTC), hosts=hosts, interrupted=interrupted)


def test_exit_codes() -> None:
    assert exit_code(_run(HostStatus.COMPLIANT)) == 0
    assert exit_code(_run(HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT)) == 1
    assert exit_code(_run(HostStatus.NONCOMPLIANT, HostStatus.TIMEOUT)) == 3
    assert exit_code(_run(HostStatus.UNSUPPORTED)) == 3
    assert exit_code(_run(HostStatus.COMPLIANT, interrupted=True)) == 4


class ScenarioTransport(Transport):
    """Answers in-process like the lab would: the bundle's facts for a scenario per host."""

    name: ClassVar[str] = "psrp"

    def __init__(self, scenarios: dict[str, str]) -> None:
        self.scenarios = scenarios

    async def run(self, host: Any, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        from fleetcheck.lab.host import LabHost
        from fleetcheck.lab.scenarios import load_scenario
        from fleetcheck.lab.simprobes import answer_bundle

        kind = self.scenarios[host.name]
        if kind == "empty":
            return ScriptOutput(stdout="", errors=["Access is denied pw-123"], failed=True)
        if kind == "garbage":
            return ScriptOutput(stdout="<html>proxy error</html>")
        machine = load_scenario(kind).model_copy(update={"hostname": host.name})
        return ScriptOutput(stdout=answer_bundle(LabHost(host.name, machine), script, args_json))


async def test_judging_outputs_and_saving_facts(tmp_path: Path) -> None:
    from fleetcheck.playbook import load_playbook

    kinds = {"H000": "healthy-2019", "H001": "wsb-missing", "H002": "legacy-ps2", "H003": "empty", "H004": "garbage"}
    playbooks = [load_playbook("system-state-backup")]
    opts = RunOptions(transports={"psrp": ScenarioTransport(kinds)}, save_facts=tmp_path / "facts")
    run = await run_fleet(_hosts(5), playbooks, opts)
    by = {h.host: h for h in run.hosts}
    assert by["H000"].status is HostStatus.COMPLIANT and len(by["H000"].checks) == len(run.check_ids)
    assert by["H001"].status is HostStatus.NONCOMPLIANT and by["H001"].message.startswith("fail: wsb-feature")
    assert (by["H002"].status, by["H002"].message) == (HostStatus.UNSUPPORTED, "unsupported: PowerShell 2.0")
    assert (by["H003"].status, by["H003"].error_type) == (HostStatus.PROTOCOL_ERROR, "script_failed")
    assert "pw-123" not in by["H003"].message and "Access is denied" in by["H003"].message
    assert (by["H004"].status, by["H004"].error_type) == (HostStatus.PROTOCOL_ERROR, "bad_facts")
    saved = sorted(p.name for p in (tmp_path / "facts").iterdir())
    assert saved == ["H000.json", "H001.json", "H002.json"]  # facts only where facts came back
    assert exit_code(run) == 3


async def test_saved_facts_keep_the_scanners_clock_for_evaluate(tmp_path: Path) -> None:
    """`evaluate` on saved facts must still see clock skew: judged by the scan time, not the host's clock."""
    from typer.testing import CliRunner

    from fleetcheck.cli import app
    from fleetcheck.playbook import load_playbook

    opts = RunOptions(transports={"psrp": ScenarioTransport({"H000": "clock-skew"})}, save_facts=tmp_path / "facts")
    run = await run_fleet(_hosts(1), [load_playbook("system-state-backup")], opts)
    live = {c.check_id: c.status for c in run.hosts[0].checks}
    assert live["clock"] is CheckStatus.FAIL
    saved = json.loads((tmp_path / "facts" / "H000.json").read_text())
    assert saved["scanned_at"] and saved["scanned_at"] != saved["host"]["collected_at"]
    report = tmp_path / "again.json"
    result = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "facts"), "-p", "system-state-backup", "--report", f"json:{report}"]
    )
    assert result.exit_code == 1, result.output
    again = json.loads(report.read_text())
    clock = {c["check_id"]: c for c in again["hosts"][0]["checks"]}["clock"]
    assert clock["status"] == "fail"
    assert clock["observed"]["skew_s"] > 1200  # the scenario's clock is 21 minutes ahead of the scanner
    assert "off the scanner" in clock["message"]
