"""Hostile parameter values travel as data end to end: a real pypsrp client sends the real bundle
to the lab, which records exactly the static script and the JSON argument it received, and the
facts come back with the hostile value as a plain service name."""

from __future__ import annotations

import asyncio
import json

from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import start_winrm_listener, stop_listener
from fleetcheck.lab.scenarios import load_scenario
from fleetcheck.probes.bundle import build_bundle, parse_facts
from fleetcheck.probes.schema import ServicesData

HOSTILE = "x'; Remove-Item C:\\ -Recurse; $(Stop-Computer -Force) \"\n; Write-Output pwned"


def _run(port: int, script: str, args_json: str) -> list[object]:
    wsman = WSMan("127.0.0.1", port=port, ssl=False, username="fleetcheck", password="Lab-Passw0rd!",
                  auth="ntlm", read_timeout=10, operation_timeout=5, reconnection_retries=0)  # fmt: skip
    with wsman, RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_script(script).add_parameter("ArgsJson", args_json)
        out: list[object] = ps.invoke()
        return out


async def test_hostile_service_name_reaches_the_lab_as_data() -> None:
    bundle = build_bundle({"services": {"names": ["VSS", HOSTILE]}, "os": {}})
    host = LabHost("srv01", load_scenario("healthy-2019"))
    server = await start_winrm_listener(host, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        output = await asyncio.to_thread(_run, port, bundle.script, bundle.args_json)
    finally:
        await stop_listener(server)
        for shell in list(host.shells.values()):
            shell.close()
    received = host.received_scripts[-1]
    # The lab keeps a capped copy of the text plus its full length: the static script, untouched.
    assert bundle.script.startswith(received["script"]) and received["script_length"] == len(bundle.script)
    assert HOSTILE not in received["script"] and "Remove-Item" not in received["script"]
    assert json.loads(received["parameters"]["ArgsJson"])["probes"]["services"]["names"] == ["VSS", HOSTILE]
    facts = parse_facts("\n".join(str(x) for x in output))
    services = ServicesData.model_validate(facts.probes["services"].data)
    evil = services.get(HOSTILE)
    assert evil is not None and evil.present is False
    assert services.get("VSS") is not None and services.get("VSS").start_mode == "Manual"  # type: ignore[union-attr]
    assert facts.probes["os"].data["computer_name"] == "SRV-2019"
