"""`fleetcheck fix` end to end over the loopback lab: real PSRP clients send the real remedy script,
the lab changes its machines, and the re-check (a real scan) judges the result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetcheck import fixlog
from fleetcheck.cli import app
from fleetcheck.fix import FixOptions, FixResult, HostFix, fix_fleet
from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet
from fleetcheck.lab.scenarios import load_scenario
from fleetcheck.playbook import Playbook, parse_playbook
from fleetcheck.remedies.bundle import REMEDY_MARKER, build_remedy_bundle
from fleetcheck.results import CheckStatus
from fleetcheck.runner import RunOptions

#: One loopback address, a port per host: these tests never compete for 127.x addresses.
ADDRESSING = "ports"
#: NTLM, not Negotiate: a Kerberos attempt against whatever krb5.conf the machine has is not what these tests are about.
AUTH = "ntlm"
SHIPPED = Path(__file__).resolve().parents[2] / "fleetcheck" / "playbooks" / "system-state-backup.yml"
HOSTILE = "C:\\x'; Restart-Computer -Force; $(Remove-Item C:\\ -Recurse) \"`n; exit"
#: host -> (scenario, the checks its plan must change)
FLEET = {
    "LAB-0001": ("wsb-missing", {"wsb-feature"}),
    "LAB-0002": ("services-misconfigured", {"service-eventsystem", "service-sens", "service-vss", "service-swprv"}),
    "LAB-0003": ("svi-acl-missing", {"svi-permission"}),
    "LAB-0004": ("mars-stopped", {"mars-service"}),
    "LAB-0005": ("clock-skew", {"clock"}),
    "LAB-0006": ("shadow-storage-full", {"shadow-storage"}),
    "LAB-0007": ("av-no-exclusions", {"av-exclusions"}),
    "LAB-0008": ("healthy-2019", set()),
}


def playbook_text(remediate: bool = True, extra_paths: str = "[]") -> str:
    text = SHIPPED.read_text(encoding="utf-8").replace('time_source: ""', 'time_source: "ntp1.corp.example,0x9"')
    text = text.replace("extra_paths: []", f"extra_paths: {extra_paths}")
    return text.replace("remediate: false", "remediate: true") if remediate else text


def playbooks(**kw: Any) -> list[Playbook]:
    return [parse_playbook(playbook_text(**kw), "fix.yml")]


def set_scenarios(fleet: LabFleet, scenarios: dict[str, str]) -> None:
    for name, scenario in scenarios.items():
        machine = load_scenario(scenario)
        if scenario == "shadow-storage-full":
            machine.events.clear()  # a logged VolSnap 24 keeps failing until it ages out (see the unit tests)
        lab = fleet.hosts[name].lab
        assert lab is not None
        machine.users = lab.machine.users  # the fleet's accounts and password
        lab.machine = machine


def options(timeout: float | None = 20, **kw: Any) -> FixOptions:
    return FixOptions(run=RunOptions(forks=10, timeout=timeout, retries=0, journal=None), **kw)


def failing(result: FixResult, host: str) -> set[str]:
    row = next(h for h in result.scan.hosts if h.host == host)
    return {c.check_id for c in row.checks if c.status is CheckStatus.FAIL}


async def test_every_remedy_plans_applies_rechecks_and_then_plans_nothing(
    fleet_hosts: Callable[..., list[Host]], tmp_path: Path
) -> None:
    db = tmp_path / "history.sqlite3"
    async with LabFleet(hosts=len(FLEET), addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, {h: s for h, (s, _) in FLEET.items()})
        hosts = fleet_hosts(fleet, tmp_path, auth=AUTH)
        plan = await fix_fleet(hosts, playbooks(), options())
        assert {p.host: {c.change.check_id for c in p.changes} for p in plan.plans} == {h: c for h, (_, c) in FLEET.items()}
        assert plan.hosts == {} and fleet.hosts["LAB-0003"].lab.machine.acls  # type: ignore[union-attr]

        seen: list[int] = []
        done = await fix_fleet(hosts, playbooks(), options(
            apply=True, serial=3, on_batch=lambda n, fixes: seen.append(n),
            record=lambda r, fixes: fixlog.record_batch(db, r, fixes)))
        assert done.stopped is None and seen == [1, 2, 3], [(h.host, h.status.value, h.message) for h in done.scan.hosts]
        assert done.batches == [["LAB-0001", "LAB-0002", "LAB-0003"], ["LAB-0004", "LAB-0005", "LAB-0006"], ["LAB-0007"]]
        for host, (_, checks) in FLEET.items():
            if not checks:
                assert host not in done.hosts
                continue
            fix = done.hosts[host]
            assert fix.error is None and {a.change.check_id: a.result for a in fix.applied} == dict.fromkeys(checks, "changed")
            assert {cid: (fix.before[cid], fix.after[cid]) for cid in checks} == dict.fromkeys(
                checks, (CheckStatus.FAIL, CheckStatus.PASS))
        assert all(h.status.value == "compliant" for h in done.final().hosts)

        again = await fix_fleet(hosts, playbooks(), options(apply=True, serial=3))
        assert [p.changes for p in again.plans] == [[]] * len(FLEET) and again.batches == []
    records = fixlog.list_fixes(db, limit=100)
    assert len(records) == sum(len(c) for _, c in FLEET.values())
    assert {r.fix_run_id for r in records} == {done.run_id} and all(r.fixed and "@" in r.who for r in records)


async def test_a_remedy_fault_leaves_that_host_failing_with_the_cause_and_the_rest_fixed(
    fleet_hosts: Callable[..., list[Host]], tmp_path: Path
) -> None:
    faults = "LAB-0002:remedy_denied/svi-permission,LAB-0003:remedy_hang"
    async with LabFleet(hosts=4, faults=faults, addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, dict.fromkeys(fleet.hosts, "svi-acl-missing"))
        # each host's own deadline: short for the one that hangs, generous for the rest on a busy machine
        hosts = [h.model_copy(update={"timeout": 8.0 if h.name == "LAB-0003" else 40.0}) for h in fleet_hosts(fleet, tmp_path, auth=AUTH)]
        result = await fix_fleet(hosts, playbooks(), options(timeout=None, apply=True))
    fixes = result.hosts
    assert len(fixes) == 4, [(h.host, h.status.value, h.message) for h in result.scan.hosts]
    assert fixes["LAB-0002"].applied[0].error == "UnauthorizedAccessException: Access is denied."
    assert fixes["LAB-0002"].after["svi-permission"] is CheckStatus.FAIL
    assert fixes["LAB-0003"].error == "no answer within 8 s" and fixes["LAB-0003"].after["svi-permission"] is CheckStatus.FAIL
    assert [fixes[h].after["svi-permission"] for h in ("LAB-0001", "LAB-0004")] == [CheckStatus.PASS] * 2
    assert result.stopped is None  # 2 of 4 failed, the default threshold is 100 %


async def test_max_fail_percent_stops_later_batches(fleet_hosts: Callable[..., list[Host]], tmp_path: Path) -> None:
    async with LabFleet(hosts=4, faults="LAB-0001:remedy_throws", addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, dict.fromkeys(fleet.hosts, "svi-acl-missing"))
        result = await fix_fleet(fleet_hosts(fleet, tmp_path, auth=AUTH), playbooks(), options(apply=True, serial=2, max_fail_percent=40))
        untouched = [fleet.hosts[h].lab.machine.acls["C:\\System Volume Information"].sddl for h in ("LAB-0003", "LAB-0004")]  # type: ignore[union-attr]
    assert result.batches == [["LAB-0001", "LAB-0002"]], [(h.host, h.status.value, h.message) for h in result.scan.hosts]
    assert result.stopped == "batch 1: 1 of 2 hosts failed, more than --max-fail-percent 40; later batches not started"
    assert result.hosts["LAB-0002"].after["svi-permission"] is CheckStatus.PASS
    assert untouched == ["O:BAG:SYD:PAI(A;OICI;FA;;;BA)"] * 2
    assert "LAB-0003" not in result.hosts and result.final().interrupted is False


async def test_stop_between_batches_applies_nothing_more_and_records_what_was_done(
    fleet_hosts: Callable[..., list[Host]], tmp_path: Path
) -> None:
    db = tmp_path / "h.sqlite3"
    stop = asyncio.Event()

    def after_batch(number: int, fixes: list[HostFix]) -> None:
        stop.set()  # what the Ctrl-C handler of `fleetcheck fix` does

    async with LabFleet(hosts=3, addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, dict.fromkeys(fleet.hosts, "mars-stopped"))
        result = await fix_fleet(fleet_hosts(fleet, tmp_path, auth=AUTH), playbooks(), options(
            apply=True, serial=1, stop=stop, on_batch=after_batch, record=lambda r, f: fixlog.record_batch(db, r, f)))
        states = [fleet.hosts[h].lab.machine.services["obengine"].state for h in sorted(fleet.hosts)]  # type: ignore[union-attr]
    assert result.batches == [["LAB-0001"]], result.scan.hosts
    assert states == ["Running", "Stopped", "Stopped"]
    assert result.stopped == "interrupted before batch 2: nothing more was changed" and result.final().interrupted
    assert [(r.host, r.check_id, r.result) for r in fixlog.list_fixes(db)] == [("LAB-0001", "mars-service", "changed")]


async def test_hostile_playbook_values_reach_the_remedy_only_as_json_data(
    fleet_hosts: Callable[..., list[Host]], tmp_path: Path
) -> None:
    pbs = playbooks(extra_paths=json.dumps([HOSTILE]))
    async with LabFleet(hosts=1, addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, {"LAB-0001": "av-no-exclusions"})
        result = await fix_fleet(fleet_hosts(fleet, tmp_path, auth=AUTH), pbs, options(apply=True))
        lab = fleet.hosts["LAB-0001"].lab
        assert lab is not None
        received = next(r for r in lab.received_scripts if r["script"].startswith(REMEDY_MARKER))
        excluded = list(lab.machine.defender.exclusion_path)
    [change] = result.plans[0].to_apply
    expected = build_remedy_bundle([change], timeout_s=3)
    assert expected.script.startswith(received["script"]) and received["script_length"] == len(expected.script)
    assert HOSTILE not in received["script"] and "Restart-Computer" not in received["script"]
    assert json.loads(received["parameters"]["ArgsJson"])["changes"][0]["params"]["paths"][0] == HOSTILE
    assert HOSTILE in excluded and result.hosts["LAB-0001"].after["av-exclusions"] is CheckStatus.PASS


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def cli_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LabFleet, Path]]:
    from fleetcheck.lab.demo import BackgroundLab

    fleet = LabFleet(2, password="Fix-Cli-Pw-1", addressing=ADDRESSING)
    background = BackgroundLab(fleet)
    background.start()
    try:
        set_scenarios(fleet, {"LAB-0001": "svi-acl-missing", "LAB-0002": "dotnet-old"})
        monkeypatch.setenv(PASSWORD_ENV, fleet.password)
        yield fleet, fleet.write_inventory(tmp_path / "lab.yml", auth=AUTH)
    finally:
        background.stop()


def test_cli_plan_apply_audit_and_json_report(cli_lab: tuple[LabFleet, Path], tmp_path: Path) -> None:
    fleet, inventory = cli_lab
    pb = tmp_path / "fix.yml"
    pb.write_text(playbook_text(), encoding="utf-8")
    db, report = tmp_path / "h.sqlite3", tmp_path / "fix.json"
    common = [str(inventory), "-p", str(pb), "--timeout", "20", "--history", str(db)]
    runner = CliRunner()

    plan = runner.invoke(app, ["fix", *common])
    assert plan.exit_code == 1, plan.output
    assert "LAB-0001\n  would change:\n    svi-permission       C:\\System Volume Information: grant SYSTEM Full Control" in plan.output
    assert "LAB-0002\n  no safe automatic fix:\n    dotnet               .NET Framework upgrades need an installer" in plan.output

    no_tty = runner.invoke(app, ["fix", *common, "--apply"])
    assert no_tty.exit_code == 2 and "without one, add --yes" in no_tty.output

    shipped = runner.invoke(app, ["fix", str(inventory), "--timeout", "20", "--history", str(db), "--apply", "--yes"])
    assert "nothing applied: not enabled for fixing: svi-permission (set remediate: true in the playbook)" in shipped.output
    assert fleet.hosts["LAB-0001"].lab.machine.acls["C:\\System Volume Information"].sddl == "O:BAG:SYD:PAI(A;OICI;FA;;;BA)"  # type: ignore[union-attr]

    with pytest.MonkeyPatch.context() as mp:  # a terminal: the plan, then the question; "n" changes nothing
        mp.setattr("fleetcheck.fixcli.interactive", lambda: True)
        declined = runner.invoke(app, ["fix", *common, "--apply"], input="n\n")
    assert "Apply 1 change(s) to 1 host(s)? [y/N]" in declined.output and "not confirmed: nothing was changed" in declined.output
    assert fleet.hosts["LAB-0001"].lab.machine.acls["C:\\System Volume Information"].sddl == "O:BAG:SYD:PAI(A;OICI;FA;;;BA)"  # type: ignore[union-attr]

    applied = runner.invoke(app, ["fix", *common, "--apply", "--yes", "--report", f"json:{report}"])
    assert applied.exit_code == 1, applied.output  # LAB-0002 still fails dotnet
    assert "batch 1: LAB-0001\n  LAB-0001\n    svi-permission       fail -> pass  changed" in applied.output
    doc = json.loads(report.read_text(encoding="utf-8"))
    [entry] = next(h for h in doc["hosts"] if h["host"] == "LAB-0001")["applied"]
    assert (entry["check_before"], entry["check_after"], entry["result"]) == ("fail", "pass", "changed")
    assert doc["schema"] == "fleetcheck/fix/v1" and fleet.password not in report.read_text(encoding="utf-8")
    assert doc["run_id"] and "@" in doc["who"] and next(h for h in doc["hosts"] if h["host"] == "LAB-0001")["at"]

    audit = runner.invoke(app, ["history", "fixes", "--history", str(db)])
    assert audit.exit_code == 0 and "LAB-0001  svi-permission  changed  [fail -> pass]" in audit.output
    assert fleet.password not in db.read_bytes().decode("utf-8", "replace")

    html = tmp_path / "next.html"
    nightly = runner.invoke(app, ["run", str(inventory), "-p", str(pb), "--timeout", "20", "--history", str(db),
                                  "--report", f"html:{html}", "--quiet"])
    assert nightly.exit_code == 1, nightly.output
    page = html.read_text(encoding="utf-8")
    assert "svi-permission fixed by fleetcheck fix at " in page and "grant SYSTEM Full Control" in page


def test_ctrl_c_between_batches_of_the_real_command(tmp_path: Path) -> None:
    """SIGINT to `fleetcheck fix --apply`: the running batch ends, no later batch starts, the audit keeps what was done."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from fleetcheck.lab.demo import BackgroundLab

    fleet = LabFleet(3, password="Fix-Sigint-Pw-1", faults="*:latency=0.6@script", addressing=ADDRESSING)
    background = BackgroundLab(fleet)
    background.start()
    try:
        set_scenarios(fleet, dict.fromkeys(fleet.hosts, "mars-stopped"))
        inventory = fleet.write_inventory(tmp_path / "lab.yml", auth=AUTH)
        pb, db = tmp_path / "fix.yml", tmp_path / "h.sqlite3"
        pb.write_text(playbook_text(), encoding="utf-8")
        env = {**os.environ, PASSWORD_ENV: fleet.password, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        cmd = [sys.executable, "-m", "fleetcheck", "fix", str(inventory), "-p", str(pb), "--apply", "--yes", "--serial", "1",
               "--history", str(db), "--timeout", "20"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("batch 1:"):
                proc.send_signal(signal.SIGINT)
                break
            assert time.monotonic() < deadline, "".join(seen)
        out, err = proc.communicate(timeout=60)
        states = [fleet.hosts[h].lab.machine.services["obengine"].state for h in sorted(fleet.hosts)]  # type: ignore[union-attr]
    finally:
        background.stop()
    text = "".join(seen) + out
    assert proc.returncode == 4, text + err
    assert "stopping after the running batch" in err
    assert "stopped: interrupted before batch" in text
    assert states[0] == "Running" and states[2] == "Stopped"  # batch 1 done, batch 3 never started
    rows = fixlog.list_fixes(db)
    assert [r.host for r in reversed(rows)] == [h for h, s in zip(sorted(fleet.hosts), states, strict=True) if s == "Running"]


def test_cli_rejects_unknown_check_ids_before_contacting_any_host(cli_lab: tuple[LabFleet, Path]) -> None:
    fleet, inventory = cli_lab
    result = CliRunner().invoke(app, ["fix", str(inventory), "--checks", "svi-permision"])
    assert result.exit_code == 2 and "unknown check id(s) svi-permision" in result.output
    assert all(not h.lab.received_scripts for h in fleet.hosts.values())  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", ["winrm", "ssh"])
async def test_remedies_travel_over_winrs_and_ssh_too(transport: str, fleet_hosts: Callable[..., list[Host]], tmp_path: Path) -> None:
    async with LabFleet(hosts=1, ssh=transport == "ssh", addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, {"LAB-0001": "services-misconfigured"})
        result = await fix_fleet(fleet_hosts(fleet, tmp_path, transport, auth=AUTH if transport != "ssh" else None), playbooks(), options(apply=True))
    fix = result.hosts["LAB-0001"]
    assert fix.error is None and [a.result for a in fix.applied] == ["changed"] * 4
    assert {cid: fix.after[cid] for cid in ("service-eventsystem", "service-sens", "service-vss", "service-swprv")} == dict.fromkeys(
        ("service-eventsystem", "service-sens", "service-vss", "service-swprv"), CheckStatus.PASS)


async def test_cancelling_a_running_batch_records_its_outcome_as_unknown(
    fleet_hosts: Callable[..., list[Host]], tmp_path: Path
) -> None:
    """What a second Ctrl-C does: the hung batch is cut short, no later batch starts, the audit says `interrupted`."""
    db = tmp_path / "h.sqlite3"
    async with LabFleet(hosts=2, faults="LAB-0001:remedy_hang", addressing=ADDRESSING) as fleet:
        set_scenarios(fleet, dict.fromkeys(fleet.hosts, "mars-stopped"))
        lab = fleet.hosts["LAB-0001"].lab
        assert lab is not None
        task = asyncio.create_task(fix_fleet(fleet_hosts(fleet, tmp_path, auth=AUTH), playbooks(), options(
            apply=True, serial=1, record=lambda r, f: fixlog.record_batch(db, r, f))))
        for _ in range(400):
            if any(r["script"].startswith(REMEDY_MARKER) for r in lab.received_scripts):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        result = await task
        untouched = fleet.hosts["LAB-0002"].lab.machine.services["obengine"].state  # type: ignore[union-attr]
    assert result.stopped == "interrupted during batch 1: the outcome on LAB-0001 is unknown; later batches not started"
    assert result.final().interrupted and untouched == "Stopped"
    assert [(r.host, r.result) for r in fixlog.list_fixes(db)] == [("LAB-0001", "interrupted")]
