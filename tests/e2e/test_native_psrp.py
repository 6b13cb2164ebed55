"""The native asyncio PSRP client against the lab: same answers, statuses and cleanup as pypsrp."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostResult, HostStatus
from fleetcheck.runner import RunOptions, build_plan, judge_output, run_fleet
from fleetcheck.transports.base import ScriptOutput
from fleetcheck.transports.psrp import PsrpTransport
from fleetcheck.transports.psrp_client.transport import NativePsrpTransport
from fleetcheck.transports.target import Target

MIX = {
    "healthy-2019": 1,
    "healthy-2022-nl": 1,
    "healthy-2022-ko": 1,
    "wsb-missing": 1,
    "mars-stopped": 1,
    "dotnet-old": 1,
    "legacy-ps2": 1,  # PSRP protocol 2.1: 150 KiB envelopes
}


def _summary(results: list[HostResult]) -> dict[str, tuple[Any, ...]]:
    return {
        r.host: (r.status, r.error_type, r.message, tuple(sorted((c.check_id, c.status) for c in r.checks)))
        for r in results
    }


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_mixed_fleet_same_results_as_pypsrp(
    scheme: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    async with LabFleet(hosts=len(MIX), mix=MIX, seed=11, https=scheme == "https") as fleet:
        hosts = fleet_hosts(fleet, tmp_path, "psrp", scheme=scheme)
        native = await run_fleet(hosts, playbooks, RunOptions(forks=8, timeout=20, psrp_client="native"))
        classic = await run_fleet(hosts, playbooks, RunOptions(forks=8, timeout=20, psrp_client="pypsrp"))
        assert fleet.counters.open_shells == 0
    got, want = _summary(native.hosts), _summary(classic.hosts)
    assert got == want
    statuses = {s for s, *_ in got.values()}
    assert statuses == {HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT, HostStatus.UNSUPPORTED}


async def test_native_is_the_default_and_pypsrp_selectable_per_host(
    tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    """No `psrp_client`: native; `psrp_client: pypsrp` per host; a recording stand-in proves which ran."""
    calls: list[str] = []

    class Spy(NativePsrpTransport):
        async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
            calls.append(target.name)
            return await super().run(target, script, args_json, timeout=timeout)

    async with LabFleet(hosts=2, seed=2) as fleet:
        h1, h2 = fleet_hosts(fleet, tmp_path, "psrp")
        hosts = [h1, h2.model_copy(update={"psrp_client": "pypsrp"})]
        run = await run_fleet(hosts, playbooks, RunOptions(forks=2, timeout=20, transports={"psrp:native": Spy()}))
    assert calls == [h1.name]
    assert {r.status for r in run.hosts} == {HostStatus.COMPLIANT}


async def test_auth_matrix(tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    """HTTP + Negotiate/NTLM (message encryption), HTTPS + Negotiate/NTLM (channel binding) and Basic."""
    combos = [("http", "negotiate"), ("http", "ntlm"), ("https", "negotiate"), ("https", "ntlm"), ("https", "basic")]
    async with LabFleet(hosts=1, https=True, seed=1) as fleet:
        hosts = [
            fleet_hosts(fleet, tmp_path / f"{s}-{a}", "psrp", scheme=s, auth=a)[0].model_copy(update={"name": f"{s}-{a}"})
            for s, a in combos
        ]
        run = await run_fleet(hosts, playbooks, RunOptions(forks=5, timeout=20, psrp_client="native"))
        lab = fleet.hosts["LAB-0001"].lab
        assert lab is not None and fleet.counters.open_shells == 0
    assert {h.host: h.status for h in run.hosts} == {f"{s}-{a}": HostStatus.COMPLIANT for s, a in combos}


async def test_big_script_and_legacy_envelopes(
    tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    """A 400 KB script needs Send after Command; a protocol 2.1 host gets 150 KiB envelopes, so more Sends."""
    plan = build_plan(playbooks)
    padding = "\n".join(f"# padding {i:06d} {'x' * 120}" for i in range(3000))
    big = plan.script + "\n" + padding
    assert len(big) > 400_000
    sends: dict[str, int] = {}
    async with LabFleet(hosts=2, mix={"healthy-2019": 1, "legacy-ps2": 1}, seed=3) as fleet:
        transport = NativePsrpTransport()
        for host in fleet_hosts(fleet, tmp_path, "psrp"):
            out = await transport.run(host.to_target(), big, plan.args_json, timeout=30)
            lab = fleet.hosts[host.name].lab
            assert lab is not None
            received = lab.received_scripts[-1]
            assert received["script_length"] == len(big) and big.startswith(received["script"])
            sends[fleet.hosts[host.name].scenario] = lab.requests_by_action.get("Send", 0)
            status, *_ = judge_output(host.to_target(), out, playbooks, datetime.now(UTC))
            assert status in (HostStatus.COMPLIANT, HostStatus.UNSUPPORTED)
    assert sends["healthy-2019"] >= 1
    assert sends["legacy-ps2"] > sends["healthy-2019"]


async def test_big_output_errors_and_terminating_error_match_pypsrp(
    tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    """2 MB of output over several Receives; error records and a terminating error, worded alike."""
    plan = build_plan(playbooks)
    faults = "LAB-0001:oversized_output=2000000,LAB-0003:probe_throws"
    async with LabFleet(hosts=3, faults=faults, seed=4) as fleet:
        h1, h2, h3 = fleet_hosts(fleet, tmp_path, "psrp")
        native, classic = NativePsrpTransport(), PsrpTransport()
        big_n = await native.run(h1.to_target(), plan.script, plan.args_json, timeout=30)
        big_c = await classic.run(h1.to_target(), plan.script, plan.args_json, timeout=30)
        lab = fleet.hosts[h1.name].lab
        assert lab is not None and lab.requests_by_action.get("Receive", 0) >= 4
        err_n = await native.run(h2.to_target(), "Get-NoSuchThing -Name x", "{}", timeout=30)
        err_c = await classic.run(h2.to_target(), "Get-NoSuchThing -Name x", "{}", timeout=30)
        thr_n = await native.run(h3.to_target(), plan.script, plan.args_json, timeout=30)
        thr_c = await classic.run(h3.to_target(), plan.script, plan.args_json, timeout=30)
    assert len(big_n.stdout) >= 1_900_000 and big_n == big_c
    assert err_n.errors and "not recognized" in err_n.errors[0]
    assert err_n == err_c
    assert thr_n.failed and thr_n == thr_c


async def test_refused_and_wrong_password(tmp_path: Path, fleet_hosts: Callable[..., list[Host]]) -> None:
    from pydantic import SecretStr

    from fleetcheck.errors import AuthRejected, Unreachable

    async with LabFleet(hosts=2, faults="LAB-0001:refuse", seed=5) as fleet:
        h1, h2 = fleet_hosts(fleet, tmp_path, "psrp")
        bad = h2.model_copy(update={"password": SecretStr("wrong-Passw0rd")})
        t = NativePsrpTransport()
        with pytest.raises(Unreachable) as refused:  # mapped at the transport boundary
            await t.run(h1.to_target(), "hostname", "{}", timeout=5)
        with pytest.raises(AuthRejected) as denied:
            await t.run(bad.to_target(), "hostname", "{}", timeout=5)
    assert refused.value.status is HostStatus.UNREACHABLE and h1.address in refused.value.message
    assert denied.value.status is HostStatus.AUTH_FAILED and "wrong-Passw0rd" not in denied.value.message


async def test_hang_times_out_within_deadline_and_deletes_shell(
    tmp_path: Path, fleet_hosts: Callable[..., list[Host]]
) -> None:
    from fleetcheck.errors import TimedOut

    async with LabFleet(hosts=1, faults="*:hang@Receive#2", seed=6) as fleet:
        (host,) = fleet_hosts(fleet, tmp_path, "psrp")
        t0 = time.monotonic()
        with pytest.raises(TimedOut, match="no answer within 2 s"):
            await NativePsrpTransport().run(host.to_target(), "hostname", "{}", timeout=2.0)
        assert time.monotonic() - t0 < 2.0 + 0.5
        assert fleet.counters.open_shells == 0  # deleted in the close reserve, over a fresh connection


async def test_cli_psrp_client_option(tmp_path: Path) -> None:
    """`fleetcheck run --psrp-client native` as a user runs it; a bad value is a usage error, no traceback."""
    import asyncio
    import json
    import os
    import sys

    from fleetcheck.lab.fleet import PASSWORD_ENV

    async def cli(*args: str, password: str) -> tuple[int, str]:
        env = os.environ | {PASSWORD_ENV: password, "COLUMNS": "200"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetcheck", *args, cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return await proc.wait(), out.decode()

    async with LabFleet(hosts=2, mix={"healthy-2019": 1, "wsb-missing": 1}, seed=2) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml")
        report = tmp_path / "r.json"
        code, out = await cli(
            "run", str(inv), "--psrp-client", "native", "--no-history", "--quiet", "--journal",
            str(tmp_path / "j.jsonl"), "--report", f"json:{report}", password=fleet.password,
        )
        bad, bad_out = await cli("run", str(inv), "--psrp-client", "fast", "--no-history", password=fleet.password)
    assert code == 1, out  # one noncompliant host
    statuses = sorted(h["status"] for h in json.loads(report.read_text())["hosts"])
    assert statuses == ["compliant", "noncompliant"]
    assert bad == 2 and "--psrp-client 'fast': expected pypsrp or native" in bad_out and "Traceback" not in bad_out


async def test_cancel_during_create_still_deletes_the_shell(
    tmp_path: Path, fleet_hosts: Callable[..., list[Host]]
) -> None:
    """Ctrl-C while the Create is on its way: the shell the host creates anyway is deleted."""
    import asyncio

    async with LabFleet(hosts=1, faults="*:latency=0.4@Create", seed=7) as fleet:
        (host,) = fleet_hosts(fleet, tmp_path, "psrp")
        task = asyncio.create_task(NativePsrpTransport().run(host.to_target(), "hostname", "{}", timeout=30))
        await asyncio.sleep(0.2)  # the Create is sent; the host answers it 0.4 s later
        assert fleet.counters.open_shells == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        lab = fleet.hosts[host.name].lab
        assert lab is not None
        assert lab.requests_by_action.get("Create") == 1 and lab.requests_by_action.get("Delete") == 1
        assert fleet.counters.open_shells == 0
