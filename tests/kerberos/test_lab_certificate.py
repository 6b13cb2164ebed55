"""Certificate authentication over HTTPS: a client certificate mapped to a local account.

Client certificates are issued by a trustme CA with the UPN in subjectAltName and the Client
Authentication EKU, as Windows requires; pypsrp and pywinrm present them unmodified.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from krb_helpers import Endpoint, in_thread, issue_client_cert, mapped_host

from fleetcheck.lab.certauth import request_client_certificates
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.tls import LabTLS


@pytest.fixture
def client_ca() -> trustme.CA:
    return trustme.CA()


@contextlib.asynccontextmanager
async def _serve(host: LabHost, client_ca: trustme.CA, tmp_path: Path) -> AsyncIterator[Endpoint]:
    tls = LabTLS()
    ctx, der = tls.server_context("127.0.0.1")
    request_client_certificates(ctx, client_ca.cert_pem.bytes())
    server = await start_winrm_listener(host, "127.0.0.1", 0, tls=ctx, cert_der=der)
    try:
        yield Endpoint(host, "127.0.0.1", server.sockets[0].getsockname()[1], True, str(tls.write_ca(tmp_path / f"{host.name}-ca.pem")))
    finally:
        await stop_listener(server)
        close_shells(host)


def _pypsrp(ep: Endpoint, cert: str, key: str) -> str:
    from pypsrp.client import Client

    client = Client(
        ep.address, port=ep.port, ssl=True, auth="certificate", certificate_pem=cert, certificate_key_pem=key,
        cert_validation=ep.ca_path, read_timeout=10, operation_timeout=5, reconnection_retries=0,
    )
    return str(client.execute_ps("whoami")[0])


def _pywinrm(ep: Endpoint, cert: str, key: str) -> str:
    import winrm

    session = winrm.Session(
        ep.url, auth=(None, None), transport="certificate", cert_pem=cert, cert_key_pem=key,
        ca_trust_path=ep.ca_path, read_timeout_sec=10, operation_timeout_sec=5,
    )
    return str(session.run_cmd("whoami").std_out.decode().strip())


@pytest.mark.parametrize("client", [_pypsrp, _pywinrm], ids=["pypsrp", "pywinrm"])
async def test_mapped_certificate_logs_on_as_the_local_user(client_ca: trustme.CA, tmp_path: Path, client: object) -> None:
    cert, key = issue_client_cert(client_ca, tmp_path)
    host = mapped_host("cert-web01", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        out = await in_thread(functools.partial(client, ep, cert, key))  # type: ignore[arg-type]
    assert out == "cert-web01\\fleetcheck"
    assert host.logons["certificate"] >= 1


async def test_unmapped_certificate_gets_401(client_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = issue_client_cert(client_ca, tmp_path, "someone-else@lab.test")
    host = mapped_host("cert-web02", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        with pytest.raises(Exception, match=r"401|rejected|[Aa]uthenticat"):
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {}


async def test_expired_certificate_fails_the_handshake(client_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = issue_client_cert(client_ca, tmp_path, expired=True)
    host = mapped_host("cert-web03", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        with pytest.raises(Exception, match=r"(?i)ssl|certificate|connection"):
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {} and host.counters.requests == 0


async def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    trusted, foreign = trustme.CA(), trustme.CA()
    cert, key = issue_client_cert(foreign, tmp_path)
    host = mapped_host("cert-web04", trusted)
    async with _serve(host, trusted, tmp_path) as ep:
        with pytest.raises(Exception):  # noqa: B017 - the TLS alert surfaces as requests' SSLError
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {}


def test_tls_context_only_asks_for_a_certificate() -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    request_client_certificates(ctx, trustme.CA().cert_pem.bytes())
    assert ctx.verify_mode == ssl.CERT_OPTIONAL  # hosts without a client certificate still get NTLM/Kerberos


@pytest.mark.parametrize("transport", ["psrp", "winrm"])
async def test_fleetcheck_run_with_certificate_auth(client_ca: trustme.CA, tmp_path: Path, transport: str) -> None:
    """`auth: certificate` with cert_path/key_path: the mapped host is checked, the unmapped one is auth_failed."""
    import json

    import yaml
    from krb_helpers import fleetcheck_cli

    cert, key = issue_client_cert(client_ca, tmp_path)
    good, unmapped = mapped_host("cert-run01", client_ca), mapped_host("cert-run02", client_ca, subject="nobody@lab.test")
    async with _serve(good, client_ca, tmp_path) as ep1, _serve(unmapped, client_ca, tmp_path) as ep2:
        inv = tmp_path / "inv.yml"
        cas = tmp_path / "both-ca.pem"
        cas.write_bytes(Path(str(ep1.ca_path)).read_bytes() + Path(str(ep2.ca_path)).read_bytes())
        top = {"transport": transport, "scheme": "https", "auth": "certificate", "cert_path": cert, "key_path": key,
               "ca_path": str(cas), "timeout": 20}
        hosts = {"cert-run01": {"address": ep1.address, "port": ep1.port}, "cert-run02": {"address": ep2.address, "port": ep2.port}}
        inv.write_text(yaml.safe_dump({"vars": top, "hosts": hosts}))
        code, out = await fleetcheck_cli("run", str(inv), "--no-history", "--report", f"json:{tmp_path / 'r.json'}", env={}, cwd=tmp_path)
    rows = {h["host"]: h for h in json.loads((tmp_path / "r.json").read_text())["hosts"]}
    assert rows["cert-run02"]["status"] == "auth_failed", out
    assert code == 3  # a host that could not be checked
    assert "certmapping" in rows["cert-run02"]["message"]
    assert rows["cert-run01"]["status"] in ("compliant", "noncompliant"), out
    assert rows["cert-run01"]["auth_mechanism"] == "certificate"
    assert good.logons.get("certificate") and not unmapped.logons
