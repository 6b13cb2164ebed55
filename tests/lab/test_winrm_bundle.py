"""A real fleetcheck probe bundle through both WinRM shells, answered by the simulated probes."""

from __future__ import annotations

import winrm
from pypsrp.powershell import PowerShell, RunspacePool
from winrm_helpers import PASSWORD, USER, Endpoint, in_thread, make_host, serve

from fleetcheck.probes.bundle import build_bundle, parse_facts
from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin

REQUESTS = {"os": None, "services": None}


async def test_bundle_over_psrp_add_script_and_parameter() -> None:
    bundle = build_bundle(REQUESTS)

    def run(ep: Endpoint) -> tuple[list[object], bool]:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script(bundle.script).add_parameter("ArgsJson", bundle.args_json)
            return ps.invoke(), ps.had_errors

    host = make_host("bk01")
    async with serve(host) as ep:
        output, had_errors = await in_thread(run, ep)
    assert had_errors is False and len(output) == 1
    facts = parse_facts(str(output[0]))
    assert set(facts.probes) == {"os", "services"}
    assert host.received_scripts[-1]["parameters"] == {"ArgsJson": bundle.args_json}


async def test_bundle_over_winrs_bootstrap() -> None:
    bundle = build_bundle(REQUESTS)

    def run(ep: Endpoint) -> tuple[bytes, bytes, int]:
        proto = winrm.Session(ep.url, auth=(USER, PASSWORD), transport="ntlm").protocol
        shell = proto.open_shell(codepage=65001)
        try:
            cid = proto.run_command(shell, bootstrap_command_line())
            proto.send_command_input(shell, cid, bootstrap_stdin(bundle.script, bundle.args_json), end=True)
            result = proto.get_command_output(shell, cid)
            proto.cleanup_command(shell, cid)
            return result
        finally:
            proto.close_shell(shell)

    host = make_host("bk02")
    async with serve(host) as ep:
        out, err, code = await in_thread(run, ep)
    assert (err, code) == (b"", 0)
    facts = parse_facts(out.decode("utf-8"))
    assert set(facts.probes) == {"os", "services"}
    assert host.received_scripts[-1]["transport"] == "winrs"
