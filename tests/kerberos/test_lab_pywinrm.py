"""Unmodified pywinrm (transport kerberos, through pykerberos) against a domain-joined lab host."""

from __future__ import annotations

import functools
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
    from fleetcheck.transports.kerberos import explain

    host = domain_host(krb_env, "kdc-winrs03")
    async with serve(host) as ep:
        with pytest.raises(Exception) as caught:
            await in_thread(_run, ep)
        problem = explain(caught.value, ep.address)
    assert host.logons == {}
    assert problem is not None and problem.cause == "no_credentials", repr(caught.value)


async def test_winrs_by_ip_names_the_missing_spn(krb_env: LabRealm, tmp_path: Path) -> None:
    from fleetcheck.transports.kerberos import KerberosOptions, explain

    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-winrs04")
    async with serve(host) as ep:
        with pytest.raises(Exception) as caught:
            await in_thread(functools.partial(_run, ep, kerberos_hostname_override=None))
        problem = explain(caught.value, ep.address, KerberosOptions(service="HTTP"))
    assert problem is not None and problem.cause == "spn_unknown", repr(caught.value)
    assert "connecting by IP address" in problem.message


@pytest.mark.parametrize("source", ["password", "keytab"])
async def test_winrs_ticket_in_memory_from_password_or_keytab(krb_env: LabRealm, tmp_path: Path, source: str) -> None:
    """pykerberos reads only a ticket cache: fleetcheck acquires one in MEMORY: and selects it for
    the calling thread, so no cache file is written and KRB5CCNAME is left alone."""
    from fleetcheck.transports.kerberos import KerberosOptions, memory_ccache, use_ccache

    principal = f"{USER}@{krb_env.realm}"
    options = (
        KerberosOptions(principal=principal, password=PASSWORD)
        if source == "password"
        else KerberosOptions(principal=principal, keytab=krb_env.client_keytab(USER))
    )
    host = domain_host(krb_env, f"kdc-winrs-{source}")

    def run(ep: Endpoint) -> tuple[str, int]:
        use_ccache(memory_ccache(options))
        try:
            return _run(ep)
        finally:
            use_ccache(None)

    async with serve(host) as ep:
        out, code = await in_thread(run, ep)
    assert (out, code) == ("fleetcheck\\alice", 0)
    assert host.logons == {"kerberos": 1}
    assert not (tmp_path / "ccache").exists()
