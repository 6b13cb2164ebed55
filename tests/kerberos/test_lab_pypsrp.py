"""Unmodified pypsrp against a domain-joined lab host with a real KDC: Kerberos as Windows does it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from krb_helpers import LOCAL_PASSWORD, LOCAL_USER, PASSWORD, USER, Endpoint, domain_host, in_thread, serve
from pypsrp.client import Client

from fleetcheck.lab.kdc import LabRealm


def _client(ep: Endpoint, auth: str, **kwargs: Any) -> Client:
    options: dict[str, Any] = {
        "port": ep.port,
        "ssl": ep.https,
        "auth": auth,
        "cert_validation": ep.ca_path if ep.https else False,
        "read_timeout": 10,
        "operation_timeout": 5,
        "reconnection_retries": 0,
        "negotiate_hostname_override": ep.fqdn,
    }
    options.update(kwargs)
    return Client(ep.address, **options)


def _whoami(ep: Endpoint, auth: str, **kwargs: Any) -> str:
    out, _, had_errors = _client(ep, auth, **kwargs).execute_ps("whoami")
    assert not had_errors
    return str(out)


async def test_kerberos_from_ticket_cache_http_encrypted(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-web01")
    async with serve(host) as ep:
        out = await in_thread(_whoami, ep, "kerberos")
    assert out == "fleetcheck\\alice"
    assert host.logons == {"kerberos": 1}
    assert host.requests_by_action["Create"] == 1  # plain HTTP: only a sealed session gets this far


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
async def test_password_in_memory_ticket(krb_env: LabRealm, tmp_path: Path, auth: str) -> None:
    host = domain_host(krb_env, "kdc-web02")
    async with serve(host) as ep:
        out = await in_thread(functools.partial(_whoami, ep, auth, username=f"{USER}@{krb_env.realm}", password=PASSWORD))
    assert out == "fleetcheck\\alice"
    assert host.logons == {"kerberos": 1}
    assert not (tmp_path / "ccache").exists()  # the ticket stayed in memory


async def test_https_kerberos_with_channel_binding(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-web03")
    async with serve(host, https=True, tmp_path=tmp_path) as ep:
        out = await in_thread(_whoami, ep, "kerberos")
    assert out == "fleetcheck\\alice"


async def test_kerberos_only_listener_uses_kerberos_framing(krb_env: LabRealm, tmp_path: Path) -> None:
    """Negotiate switched off (winrm/config/service/auth): the client speaks the Kerberos scheme and
    the body framing names application/HTTP-Kerberos-session-encrypted."""
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-web04", negotiate_auth=False, basic_auth=False)
    async with serve(host) as ep:
        client = _client(ep, "kerberos")
        out = await in_thread(lambda: client.execute_ps("whoami")[0])
        protocol = client.wsman.transport.encryption.protocol  # public attribute of pypsrp's transport
    assert str(out).lower().endswith("alice")
    assert protocol == "application/HTTP-Kerberos-session-encrypted"


async def test_negotiate_without_kerberos_credentials_falls_back_to_ntlm(krb_env: LabRealm) -> None:
    """A local account has no ticket and no principal: Negotiate settles on NTLM, as on Windows."""
    host = domain_host(krb_env, "kdc-web05")
    async with serve(host) as ep:
        out = await in_thread(functools.partial(_whoami, ep, "negotiate", username=LOCAL_USER, password=LOCAL_PASSWORD))
    assert out.lower() == "kdc-web05\\fleetcheck"
    assert host.logons == {"ntlm": 1}


async def test_ticket_for_another_hosts_spn_is_rejected(krb_env: LabRealm, tmp_path: Path) -> None:
    """Each host decrypts only tickets for its own SPNs (its own computer-account key)."""
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    domain_host(krb_env, "kdc-other")
    host = domain_host(krb_env, "kdc-web06")
    async with serve(host) as ep:
        with pytest.raises(Exception) as caught:
            await in_thread(functools.partial(_whoami, ep, "kerberos", negotiate_hostname_override="kdc-other.fleetcheck.test"))
    assert "401" in str(caught.value) or "auth" in str(caught.value).lower()


async def test_client_keytab_through_fleetchecks_credentials(krb_env: LabRealm) -> None:
    """A client keytab becomes an in-memory ticket (no cache file); pypsrp takes the credential list."""
    from fleetcheck.transports.kerberos import KerberosOptions, credentials

    keytab = krb_env.client_keytab(USER)
    host = domain_host(krb_env, "kdc-web07")
    creds = credentials(KerberosOptions(principal=f"{USER}@{krb_env.realm}", keytab=keytab))
    async with serve(host) as ep:
        out = await in_thread(functools.partial(_whoami, ep, "kerberos", username=creds))
    assert out == "fleetcheck\\alice"
    assert host.logons == {"kerberos": 1}


async def test_https_kerberos_channel_binding_mismatch_is_refused(krb_env: LabRealm, tmp_path: Path) -> None:
    """A TLS-terminating middlebox (the cbt_mismatch fault) breaks the Kerberos channel binding too."""
    from fleetcheck.lab.host import FaultSpec

    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-web08")
    host.faults.append(FaultSpec(kind="cbt_mismatch", on="auth"))
    async with serve(host, https=True, tmp_path=tmp_path) as ep:
        with pytest.raises(Exception) as caught:
            await in_thread(_whoami, ep, "kerberos")
    assert "401" in str(caught.value) or "authenticat" in str(caught.value).lower()
    assert host.logons == {}
