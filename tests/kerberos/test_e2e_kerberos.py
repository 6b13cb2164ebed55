"""`fleetcheck run` with Kerberos against a lab fleet joined to a real MIT KDC.

A mixed set of transports, clients, schemes and credential sources gives the same table as the
NTLM run over the same fleet, and every result says Kerberos authenticated it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from krb_helpers import PASSWORD, USER, fleetcheck_cli, join_fleet, kerberos_inventory

from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet
from fleetcheck.lab.kdc import LabRealm

MIX = {"healthy-2019": 1, "wsb-missing": 1}


def _statuses(report: Path) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str | None]]:
    doc = json.loads(report.read_text())
    hosts = {h["host"]: h["status"] for h in doc["hosts"]}
    checks = {h["host"]: {c["check_id"]: c["status"] for c in h["checks"]} for h in doc["hosts"]}
    mechanisms = {h["host"]: h.get("auth_mechanism") for h in doc["hosts"]}
    return hosts, checks, mechanisms


@pytest.mark.parametrize(
    ("transport", "client", "scheme", "source"),
    [
        ("psrp", "pypsrp", "http", "ccache"),
        ("psrp", "native", "http", "password"),
        ("psrp", "native", "https", "keytab"),
        ("psrp", "pypsrp", "https", "password"),
        ("winrm", "-", "http", "ccache"),
        ("winrm", "-", "https", "password"),
    ],
)
async def test_kerberos_run_matches_the_ntlm_run(
    krb_env: LabRealm, tmp_path: Path, transport: str, client: str, scheme: str, source: str
) -> None:
    if source == "ccache":
        krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    env = {**krb_env.env, "KRB5CCNAME": f"FILE:{tmp_path / 'ccache'}", "FC_KRB_PASSWORD": PASSWORD}
    async with LabFleet(hosts=2, mix=MIX, seed=3, https=scheme == "https", workers=1, addressing="ports") as fleet:
        join_fleet(fleet, krb_env)
        ntlm_inv = fleet.write_inventory(tmp_path / "ntlm.yml", transport=transport, scheme=scheme)  # type: ignore[arg-type]
        code_ntlm, out_ntlm = await fleetcheck_cli(
            "run", str(ntlm_inv), "--no-history", "--report", f"json:{tmp_path / 'ntlm.json'}",
            env={**env, PASSWORD_ENV: fleet.password}, cwd=tmp_path,
        )
        krb_inv = kerberos_inventory(
            fleet, tmp_path / "krb.yml", transport=transport, scheme=scheme, source=source,
            psrp_client=client if client != "-" else "pypsrp", realm=krb_env,
        )
        code, out = await fleetcheck_cli(
            "run", str(krb_inv), "--no-history", "--report", f"json:{tmp_path / 'krb.json'}", env=env, cwd=tmp_path,
        )
        logons = {name: dict(h.lab.logons) for name, h in fleet.hosts.items() if h.lab is not None}
    assert code == code_ntlm == 1, out + out_ntlm  # wsb-missing is noncompliant in both
    hosts, checks, mechanisms = _statuses(tmp_path / "krb.json")
    hosts_ntlm, checks_ntlm, _ = _statuses(tmp_path / "ntlm.json")
    assert (hosts, checks) == (hosts_ntlm, checks_ntlm)
    assert set(mechanisms.values()) == {"kerberos"}
    assert all(counts.get("kerberos") for counts in logons.values()), logons
    assert "Auth" in out and "kerberos" in out  # the table's Auth column
    assert PASSWORD not in out
    assert not (tmp_path / "ccache").exists() or source == "ccache"  # passwords and keytabs stay in memory


@pytest.mark.parametrize("client", ["pypsrp", "native"])
async def test_negotiate_fallback_to_ntlm_is_shown_and_can_warn(krb_env: LabRealm, tmp_path: Path, client: str) -> None:
    """By IP without the SPN override, Negotiate cannot get a ticket and falls back to NTLM: the
    result says ntlm, and a playbook with `ntlm_fallback: warn` warns on the host."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text("name: domain\nntlm_fallback: warn\nchecks:\n  wsb-feature: {}\n")
    async with LabFleet(hosts=1, mix={"healthy-2019": 1}, seed=4, workers=1, addressing="ports") as fleet:
        join_fleet(fleet, krb_env)
        inv = kerberos_inventory(
            fleet, tmp_path / "nego.yml", source="password", auth="negotiate", by_name=False, psrp_client=client
        )
        code, out = await fleetcheck_cli(
            "run", str(inv), "--playbook", str(playbook), "--no-history", "--report", f"json:{tmp_path / 'r.json'}",
            env={**krb_env.env, "FC_KRB_PASSWORD": PASSWORD, "KRB5CCNAME": f"FILE:{tmp_path / 'none'}"}, cwd=tmp_path,
        )
    assert (tmp_path / "r.json").exists(), out
    hosts, checks, mechanisms = _statuses(tmp_path / "r.json")
    assert mechanisms == {"LAB-0001": "ntlm"}, out
    assert checks["LAB-0001"]["auth.ntlm_fallback"] == "warn"
    assert hosts == {"LAB-0001": "compliant"} and code == 0, out


def test_environment_is_not_leaked_to_other_tests() -> None:
    assert "FC_KRB_PASSWORD" not in os.environ


async def test_one_mixed_domain_fleet(krb_env: LabRealm, tmp_path: Path) -> None:
    """One inventory, one run: Kerberos over pypsrp, native and WinRS, HTTP and HTTPS, from a
    ticket cache, a password and a keytab; CredSSP; and an NTLM host. Same table as all-NTLM."""
    import yaml

    from fleetcheck.lab.kdc import REALM

    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    env = {**krb_env.env, "KRB5CCNAME": f"FILE:{tmp_path / 'ccache'}", "FC_KRB_PASSWORD": PASSWORD}
    mix = {"healthy-2019": 4, "wsb-missing": 2}
    async with LabFleet(hosts=6, mix=mix, seed=7, https=True, workers=1, addressing="ports") as fleet:
        join_fleet(fleet, krb_env)
        names = sorted(fleet.hosts)
        (tmp_path / "ca.pem").write_bytes(fleet.ca_pem or b"")
        upn = {"username": f"{USER}@{REALM}"}
        plans: list[dict[str, object]] = [
            {"transport": "psrp", "scheme": "http", "auth": "kerberos"},
            {"transport": "psrp", "scheme": "https", "auth": "kerberos", "psrp_client": "native", **upn, "password_env": "FC_KRB_PASSWORD"},
            {"transport": "winrm", "scheme": "http", "auth": "kerberos", **upn, "kerberos_keytab": krb_env.client_keytab(USER)},
            {"transport": "psrp", "scheme": "http", "auth": "negotiate", "psrp_client": "native"},
            {"transport": "psrp", "scheme": "https", "auth": "credssp", "username": fleet.username, "password_env": PASSWORD_ENV},
            {"transport": "winrm", "scheme": "http", "auth": "ntlm", "username": fleet.username, "password_env": PASSWORD_ENV},
        ]
        hosts = {}
        for name, plan in zip(names, plans, strict=True):
            h = fleet.hosts[name]
            assert h.lab is not None
            h.lab.machine.winrm.credssp_auth = True
            port = h.https_port if plan["scheme"] == "https" else h.http_port
            hosts[name] = {"address": h.address, "port": port, "negotiate_hostname_override": f"{name.lower()}.fleetcheck.test", **plan}
        inv = tmp_path / "mixed.yml"
        inv.write_text(yaml.safe_dump({"vars": {"ca_path": str(tmp_path / "ca.pem"), "timeout": 30}, "hosts": hosts}))
        code, out = await fleetcheck_cli(
            "run", str(inv), "--no-history", "--report", f"json:{tmp_path / 'mixed.json'}",
            env={**env, PASSWORD_ENV: fleet.password}, cwd=tmp_path,
        )
        ntlm_inv = fleet.write_inventory(tmp_path / "ntlm.yml")
        await fleetcheck_cli(
            "run", str(ntlm_inv), "--no-history", "--report", f"json:{tmp_path / 'ntlm.json'}",
            env={**env, PASSWORD_ENV: fleet.password}, cwd=tmp_path,
        )
    statuses, checks, mechanisms = _statuses(tmp_path / "mixed.json")
    assert (statuses, checks) == _statuses(tmp_path / "ntlm.json")[:2], out
    assert [mechanisms[n] for n in names] == ["kerberos", "kerberos", "kerberos", "kerberos", "credssp", "ntlm"]
    assert code == 1 and PASSWORD not in out and fleet.password not in out
