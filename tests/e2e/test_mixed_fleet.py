"""A mixed lab fleet over each transport: every scenario ends with the status and failures it should."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.probes.bundle import parse_facts
from fleetcheck.results import CheckStatus, HostStatus
from fleetcheck.runner import RunOptions, exit_code, run_fleet

MIX = {
    "healthy-2019": 1,
    "healthy-2022-nl": 1,
    "healthy-2022-ko": 1,
    "wsb-missing": 1,
    "mars-stopped": 1,
    "dotnet-old": 1,
    "legacy-ps2": 1,
}
#: scenario -> (host status, the checks that must fail; nothing else may fail)
EXPECTED: dict[str, tuple[HostStatus, set[str]]] = {
    "healthy-2019": (HostStatus.COMPLIANT, set()),
    "healthy-2022-nl": (HostStatus.COMPLIANT, set()),
    "healthy-2022-ko": (HostStatus.COMPLIANT, set()),
    "wsb-missing": (HostStatus.NONCOMPLIANT, {"wsb-feature", "wsb-cmdlets"}),
    "mars-stopped": (HostStatus.NONCOMPLIANT, {"mars-service"}),
    "dotnet-old": (HostStatus.NONCOMPLIANT, {"dotnet"}),
    "legacy-ps2": (HostStatus.UNSUPPORTED, set()),
}


@pytest.mark.parametrize(
    ("transport", "scheme"),
    [("psrp", "http"), ("psrp", "https"), ("winrm", "http"), ("winrm", "https"), ("ssh", None)],
)
async def test_mixed_fleet_statuses(
    transport: str,
    scheme: str | None,
    tmp_path: Path,
    playbooks: Sequence[Any],
    fleet_hosts: Callable[..., list[Host]],
) -> None:
    https = scheme == "https"
    async with LabFleet(hosts=len(MIX), mix=MIX, seed=11, https=https, ssh=transport == "ssh") as fleet:
        kw = {"scheme": scheme} if scheme else {}
        hosts = fleet_hosts(fleet, tmp_path, transport, **kw)
        if https:
            assert all(h.cert_validation and h.ca_path for h in hosts)  # validated against the lab CA
        facts_dir = tmp_path / "facts"
        opts = RunOptions(forks=10, timeout=20, save_facts=facts_dir, ssh_known_hosts="accept")
        run = await run_fleet(hosts, playbooks, opts)

    assert len(run.hosts) == len(MIX)
    assert exit_code(run) == 3  # legacy-ps2 could not be checked
    assert run.check_ids and "wsb-feature" in run.check_ids
    for res in run.hosts:
        scenario = fleet.hosts[res.host].scenario
        status, must_fail = EXPECTED[scenario]
        assert res.status is status, (scenario, res.message)
        assert res.transport == transport
        if status is HostStatus.UNSUPPORTED:
            assert res.message == "unsupported: PowerShell 2.0"
            continue
        failed = {c.check_id for c in res.checks if c.status is CheckStatus.FAIL}
        assert failed == must_fail, scenario
        assert {c.check_id for c in res.checks} == set(run.check_ids)
        saved = parse_facts((facts_dir / f"{res.host}.json").read_text())
        assert saved.host.computer_name == res.host
        assert fleet.password not in (facts_dir / f"{res.host}.json").read_text()


@pytest.mark.parametrize("transport", ["winrm", "ssh"])
async def test_large_script_streams_over_stdin(
    transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    """The command line stays the short constant bootstrap; a 300 KB script goes through stdin."""
    from datetime import UTC, datetime

    from fleetcheck.runner import build_plan, judge_output
    from fleetcheck.transports.bootstrap import bootstrap_command_line
    from fleetcheck.transports.ssh import SshTransport
    from fleetcheck.transports.winrm import WinrmTransport

    plan = build_plan(playbooks)
    padding = "\n".join(f"# padding {i:06d} {'x' * 80}" for i in range(3000))
    big = plan.script + "\n" + padding
    assert len(big) > 300_000 and len(bootstrap_command_line()) < 8191
    async with LabFleet(hosts=1, ssh=transport == "ssh", seed=1) as fleet:
        (host,) = fleet_hosts(fleet, tmp_path, transport)
        t = WinrmTransport() if transport == "winrm" else SshTransport()
        out = await t.run(host.to_target(), big, plan.args_json, timeout=30)
        lab = fleet.hosts[host.name].lab
        assert lab is not None
        received = lab.received_scripts[-1]
        sends = lab.requests_by_action.get("Send", 0)
    status, _, checks, _, _ = judge_output(host.to_target(), out, playbooks, datetime.now(UTC))
    assert status is HostStatus.COMPLIANT and len(checks) == len(plan.check_ids)
    # the whole script arrived, as data on stdin (the bootstrap may normalise line ends)
    assert received["script_length"] >= len(big)
    assert received["script"].startswith("# fleetcheck:bundle=v1")
    if transport == "winrm":
        assert sends >= 5  # chunked: one envelope could not hold it


async def test_auth_matrix(tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    """Every transport x scheme x auth an admin would pick gets a compliant healthy host."""
    combos = [
        (transport, scheme, auth)
        for transport in ("psrp", "winrm")
        for scheme, auths in (("http", ("negotiate", "ntlm")), ("https", ("negotiate", "ntlm", "basic")))
        for auth in auths
    ]
    async with LabFleet(hosts=1, https=True, seed=1) as fleet:
        hosts = [
            fleet_hosts(fleet, tmp_path / f"{t}-{s}-{a}", t, scheme=s, auth=a)[0].model_copy(
                update={"name": f"{t}-{s}-{a}"}
            )
            for t, s, a in combos
        ]
        run = await run_fleet(hosts, playbooks, RunOptions(forks=4, timeout=20))
    assert {h.host: h.status for h in run.hosts} == {f"{t}-{s}-{a}": HostStatus.COMPLIANT for t, s, a in combos}


async def test_ssh_key_auth(tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    key.write_private_key(str(key_path))
    public = key.export_public_key().decode().strip()
    async with LabFleet(hosts=1, ssh=True, authorized_keys=[public], seed=1) as fleet:
        (host,) = fleet_hosts(fleet, tmp_path, "ssh")
        by_key = host.model_copy(update={"auth": "key", "key_path": key_path, "password": None})
        wrong = asyncssh.generate_private_key("ssh-ed25519")
        wrong_path = tmp_path / "other"
        wrong.write_private_key(str(wrong_path))
        other = by_key.model_copy(update={"name": "OTHER", "key_path": wrong_path})
        run = await run_fleet([by_key, other], playbooks, RunOptions(timeout=10))
    r = {h.host: h for h in run.hosts}
    assert r[host.name].status is HostStatus.COMPLIANT
    assert r["OTHER"].status is HostStatus.AUTH_FAILED
    assert "authorized_keys" in r["OTHER"].message
