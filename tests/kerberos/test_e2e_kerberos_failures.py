"""Each Kerberos failure cause produced for real in a `fleetcheck run`: one row per host with its
own message, within the host's deadline, tried once (a rejected password is never retried)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from krb_helpers import PASSWORD, USER, fleetcheck_cli, fqdn, join_fleet

from fleetcheck.lab.fleet import LabFleet
from fleetcheck.lab.kdc import FAKETIME_LIBS, REALM, LabRealm

TIMEOUT = 20


def _inventory(fleet: LabFleet, path: Path, per_host: dict[str, dict[str, Any]]) -> Path:
    top = {"transport": "psrp", "scheme": "http", "auth": "kerberos", "timeout": TIMEOUT}
    hosts = {}
    for name, extra in per_host.items():
        h = fleet.hosts[name]
        hosts[name] = {"address": h.address, "port": h.http_port, "negotiate_hostname_override": fqdn(name), **extra}
        if hosts[name]["negotiate_hostname_override"] is None:
            del hosts[name]["negotiate_hostname_override"]
    path.write_text(yaml.safe_dump({"vars": top, "hosts": hosts}, sort_keys=False))
    return path


def _rows(report: Path) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in json.loads(report.read_text())["hosts"]}


@pytest.mark.skipif(not any(Path(p).exists() for p in FAKETIME_LIBS), reason="libfaketime missing (Debian package faketime)")
async def test_each_cause_is_its_own_row(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.add_user("leaver", "Leaver-Passw0rd!")
    krb_env.delete_principal("leaver")
    with krb_env.kdc_clock_offset(-86400):  # a ticket from yesterday: expired
        old = krb_env.kinit(USER, PASSWORD, tmp_path / "old.ccache", "-l", "1h", clock_offset=-86400)
    env = {**krb_env.env, "KRB5CCNAME": f"FILE:{tmp_path / 'empty.ccache'}", "GOOD_PW": PASSWORD, "BAD_PW": "not-" + PASSWORD}
    async with LabFleet(hosts=6, mix={"healthy-2019": 6}, seed=5, workers=1, addressing="ports") as fleet:
        join_fleet(fleet, krb_env)
        names = sorted(fleet.hosts)
        cases = {
            names[0]: ("ok", {"username": f"{USER}@{REALM}", "password_env": "GOOD_PW"}),
            names[1]: ("kerberos_principal_unknown", {"username": f"leaver@{REALM}", "password_env": "GOOD_PW", "psrp_client": "native"}),
            names[2]: ("kerberos_wrong_password", {"username": f"{USER}@{REALM}", "password_env": "BAD_PW"}),
            names[3]: ("kerberos_spn_unknown", {"username": f"{USER}@{REALM}", "password_env": "GOOD_PW", "negotiate_hostname_override": None, "psrp_client": "native"}),
            names[4]: ("kerberos_ticket_expired", {"kerberos_ccache": f"FILE:{old}"}),
            names[5]: ("kerberos_no_credentials", {"psrp_client": "native"}),
        }
        inv = _inventory(fleet, tmp_path / "inv.yml", {n: extra for n, (_, extra) in cases.items()})
        code, out = await fleetcheck_cli("run", str(inv), "--no-history", "--report", f"json:{tmp_path / 'r.json'}", env=env, cwd=tmp_path)
        rows = _rows(tmp_path / "r.json")
        with krb_env.kdc_stopped():
            code_down, out_down = await fleetcheck_cli(
                "run", str(inv), "--no-history", "--limit", names[0], "--report", f"json:{tmp_path / 'down.json'}", env=env, cwd=tmp_path,
            )
        down = _rows(tmp_path / "down.json")
    assert code == 3, out  # hosts that could not be checked
    for name, (expected, _) in cases.items():
        row = rows[name]
        if expected == "ok":
            assert row["status"] == "compliant" and row["auth_mechanism"] == "kerberos", row
            continue
        assert (row["status"], row["error_type"], row["attempts"]) == ("auth_failed", expected, 1), row
        assert row["duration_s"] < TIMEOUT
    assert "does not exist in the domain" in rows[names[1]]["message"]
    assert "wrong password" in rows[names[2]]["message"] and "not retried" in rows[names[2]]["message"]
    assert "connecting by IP address" in rows[names[3]]["message"]
    assert "run kinit again" in rows[names[4]]["message"]
    assert "run kinit, or set password_env" in rows[names[5]]["message"]
    assert PASSWORD not in out and "not-" + PASSWORD not in out
    assert code_down == 3 and down[names[0]]["error_type"] == "kerberos_kdc_unreachable", out_down
    assert "cannot reach a KDC" in down[names[0]]["message"]


@pytest.mark.skipif(not any(Path(p).exists() for p in FAKETIME_LIBS), reason="libfaketime missing (Debian package faketime)")
async def test_clock_skew(krb_env: LabRealm, tmp_path: Path) -> None:
    env = {**krb_env.env, "KRB5CCNAME": f"FILE:{tmp_path / 'empty.ccache'}", "GOOD_PW": PASSWORD}
    async with LabFleet(hosts=1, mix={"healthy-2019": 1}, seed=6, workers=1, addressing="ports") as fleet:
        join_fleet(fleet, krb_env)
        name = next(iter(fleet.hosts))
        inv = _inventory(fleet, tmp_path / "inv.yml", {name: {"username": f"{USER}@{REALM}", "password_env": "GOOD_PW"}})
        with krb_env.kdc_clock_offset(2 * 3600):
            code, out = await fleetcheck_cli("run", str(inv), "--no-history", "--report", f"json:{tmp_path / 'r.json'}", env=env, cwd=tmp_path)
    row = _rows(tmp_path / "r.json")[name]
    assert (code, row["error_type"], row["attempts"]) == (3, "kerberos_clock_skew", 1), out
    assert "clock skew too great" in row["message"]
