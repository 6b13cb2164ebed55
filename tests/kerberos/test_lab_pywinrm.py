"""Unmodified pywinrm (transport kerberos, through pykerberos) against a domain-joined lab host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from krb_helpers import PASSWORD, USER, Endpoint, domain_host, in_thread, serve

from fleetcheck.lab.kdc import LabRealm

winrm = pytest.importorskip("winrm")
pytest.importorskip("kerberos", reason="pywinrm's Kerberos transport needs pykerberos (pip install 'fleetcheck[kerberos]')")


def _run(ep: Endpoint, **kwargs: Any) -> tuple[str, int]:
    options: dict[str, Any] = {
        "transport": "kerberos",
        "kerberos_hostname_override": ep.fqdn,
        "server_cert_validation": "validate" if ep.https else "ignore",
        "ca_trust_path": ep.ca_path,
        "read_timeout_sec": 10,
        "operation_timeout_sec": 5,
    }
    options.update(kwargs)
    session = winrm.Session(ep.url, auth=(None, None), **options)
    result = session.run_cmd("whoami")
    return result.std_out.decode().strip(), result.status_code


async def test_winrs_kerberos_http_encrypted(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-winrs01")
    async with serve(host) as ep:
        out, code = await in_thread(_run, ep)
    assert (out, code) == ("fleetcheck\\alice", 0)
    assert host.logons == {"kerberos": 1}


async def test_winrs_kerberos_https(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-winrs02")
    async with serve(host, https=True, tmp_path=tmp_path) as ep:
        out, code = await in_thread(_run, ep)
    assert (out, code) == ("fleetcheck\\alice", 0)


async def test_winrs_kerberos_without_ticket_is_rejected(krb_env: LabRealm) -> None:
    host = domain_host(krb_env, "kdc-winrs03")
    async with serve(host) as ep:
        with pytest.raises(Exception, match=r"(?i)credentials|kerberos|gss"):
            await in_thread(_run, ep)
    assert host.logons == {}
