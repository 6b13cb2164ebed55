"""With every logger at DEBUG, a run over each transport writes no password and no auth token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet

SECRET = "Xq7-unique-lab-secret"


@pytest.mark.parametrize("transport", ["psrp", "psrp-native", "winrm", "ssh"])
async def test_debug_logs_hold_no_secret(
    transport: str,
    tmp_path: Path,
    playbooks: Sequence[Any],
    fleet_hosts: Callable[..., list[Host]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with LabFleet(hosts=2, ssh=transport == "ssh", password=SECRET, seed=9) as fleet:
        if transport == "psrp-native":
            hosts = [h.model_copy(update={"psrp_client": "native"}) for h in fleet_hosts(fleet, tmp_path, "psrp")]
        else:
            hosts = fleet_hosts(fleet, tmp_path, transport)
        wrong = hosts[1].model_copy(update={"password": SecretStr(SECRET + "-wrong")})
        journal = tmp_path / "j.jsonl"
        run = await run_fleet([hosts[0], wrong], playbooks, RunOptions(timeout=10, journal=journal))
    statuses = sorted(h.status for h in run.hosts)
    assert statuses == sorted([HostStatus.COMPLIANT, HostStatus.AUTH_FAILED])
    text = caplog.text + journal.read_text() + run.model_dump_json()
    assert caplog.records  # the libraries did log at DEBUG
    assert SECRET not in text
    assert "TlRMTVNT" not in text  # base64 of "NTLMSSP": no NTLM message in any log line
    from spnego._ntlm_raw.crypto import ntowfv1

    assert ntowfv1(SECRET).hex() not in text.lower()  # nor the NT hash the native client keeps in memory


def _keytab_keys(keytab: str) -> list[str]:
    """The hex keys in a keytab (`klist -kK`), which must never reach a log."""
    import re
    import subprocess

    out = subprocess.run(["klist", "-kK", keytab], capture_output=True, text=True, check=True).stdout
    return [k.lower() for k in re.findall(r"\(0x([0-9a-fA-F]{32,})\)", out)]


@pytest.mark.parametrize(
    ("transport", "auth"),
    [("psrp", "kerberos"), ("psrp-native", "kerberos"), ("winrm", "kerberos"), ("psrp", "credssp"), ("winrm", "credssp")],
)
async def test_kerberos_and_credssp_runs_hold_no_secret(
    transport: str, auth: str, tmp_path: Path, playbooks: Sequence[Any], caplog: pytest.LogCaptureFixture, krb_env: Any
) -> None:
    """No password, ticket, session key, keytab key, delegated credential or auth token in the
    DEBUG logs, the journal or the results of a Kerberos or CredSSP run (one host right, one wrong)."""
    import base64

    import yaml

    from fleetcheck.inventory import load_credentials, load_inventory
    from fleetcheck.lab.kdc import REALM
    from fleetcheck.lab.machine import LabUser

    user = f"secret{transport.replace('-', '')}{auth}"
    krb_env.add_user(user, SECRET)  # set-up (k5test logs its kadmin commands): before the capture
    keys = _keytab_keys(krb_env.client_keytab(user))
    caplog.set_level(logging.DEBUG)
    async with LabFleet(hosts=2, https=auth == "credssp", password=SECRET, seed=9, workers=1, addressing="ports") as fleet:
        hosts_cfg = {}
        for h in fleet.hosts.values():
            assert h.lab is not None
            fqdn = f"{h.name.lower()}.fleetcheck.test"
            h.lab.kerberos_keytab = krb_env.keytabs.get(fqdn) or krb_env.add_host(fqdn)
            h.lab.machine.users.append(LabUser(name=user, password=SECRET, domain=REALM))
            h.lab.machine.winrm.credssp_auth = True
            port = h.https_port if auth == "credssp" else h.http_port
            hosts_cfg[h.name] = {"address": h.address, "port": port, "negotiate_hostname_override": fqdn}
        names = sorted(hosts_cfg)
        hosts_cfg[names[1]]["password_env"] = "FC_WRONG"
        top: dict[str, Any] = {
            "transport": "psrp" if transport.startswith("psrp") else "winrm",
            "scheme": "https" if auth == "credssp" else "http",
            "auth": auth,
            "username": f"{user}@{REALM}" if auth == "kerberos" else fleet.username,
            "password_env": "FC_SECRET",
            "timeout": 20,
        }
        if transport == "psrp-native":
            top["psrp_client"] = "native"
        if auth == "credssp":
            assert fleet.ca_pem is not None
            (tmp_path / "ca.pem").write_bytes(fleet.ca_pem)
            top["ca_path"] = str(tmp_path / "ca.pem")
        inv = tmp_path / "inv.yml"
        inv.write_text(yaml.safe_dump({"vars": top, "hosts": hosts_cfg}, sort_keys=False))
        hosts = load_credentials(load_inventory(inv).hosts, environ={"FC_SECRET": SECRET, "FC_WRONG": SECRET + "-wrong"})
        journal = tmp_path / "j.jsonl"
        caplog.clear()
        run = await run_fleet(hosts, playbooks, RunOptions(timeout=20, journal=journal))
        logons = [dict(h.lab.logons) for h in fleet.hosts.values() if h.lab is not None]
    statuses = {h.host: h.status for h in run.hosts}
    assert statuses == {names[0]: HostStatus.COMPLIANT, names[1]: HostStatus.AUTH_FAILED}, run.hosts
    assert any(auth in counts or (auth == "kerberos" and "kerberos" in counts) for counts in logons), logons
    text = caplog.text + journal.read_text() + run.model_dump_json()
    assert caplog.records
    assert SECRET not in text  # the password, and the delegated credential that carries it
    for key in keys:  # the user's long-term keys (a keytab's content)
        assert key not in text.lower() and base64.b64encode(bytes.fromhex(key)).decode() not in text
    for marker in ("Negotiate YI", "Kerberos YI", "CredSSP Fg", "SPNEGO step", "TlRMTVNT"):
        assert marker not in text, marker  # no Kerberos, SPNEGO, CredSSP or NTLM token
