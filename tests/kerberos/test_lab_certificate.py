"""Certificate authentication over HTTPS: a client certificate mapped to a local account.

Client certificates are issued by a trustme CA with the UPN in subjectAltName and the Client
Authentication EKU, as Windows requires; pypsrp and pywinrm present them unmodified.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from krb_helpers import LOCAL_USER, Endpoint, domain_host, in_thread

from fleetcheck.lab.certauth import UPN_OID, request_client_certificates
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.machine import CertMapping
from fleetcheck.lab.tls import LabTLS

UPN = "fleetcheck@lab.test"


def issue(ca: trustme.CA, tmp_path: Path, upn: str = UPN, *, expired: bool = False, name: str = "client") -> tuple[str, str]:
    """(cert PEM path, key PEM path) for a client certificate signed by `ca`."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = (now - dt.timedelta(days=30), now - dt.timedelta(days=1)) if expired else (now - dt.timedelta(hours=1), now + dt.timedelta(days=1))
    upn_der = b"\x0c" + bytes([len(upn)]) + upn.encode()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, upn.split("@")[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN_OID, upn_der)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def mapped_host(name: str, client_ca: trustme.CA, subject: str = UPN) -> LabHost:
    host = domain_host(None, name, certificate_auth=True)
    issuer = x509.load_pem_x509_certificate(client_ca.cert_pem.bytes()).subject.rfc4514_string()
    host.machine.winrm.cert_mappings.append(CertMapping(subject=subject, issuer=issuer, user=LOCAL_USER))
    return host


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
        yield Endpoint(host, "127.0.0.1", server.sockets[0].getsockname()[1], True, str(tls.write_ca(tmp_path / "ca.pem")))
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
    cert, key = issue(client_ca, tmp_path)
    host = mapped_host("cert-web01", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        out = await in_thread(functools.partial(client, ep, cert, key))  # type: ignore[arg-type]
    assert out == "cert-web01\\fleetcheck"
    assert host.logons["certificate"] >= 1


async def test_unmapped_certificate_gets_401(client_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = issue(client_ca, tmp_path, "someone-else@lab.test")
    host = mapped_host("cert-web02", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        with pytest.raises(Exception, match=r"401|rejected|[Aa]uthenticat"):
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {}


async def test_expired_certificate_fails_the_handshake(client_ca: trustme.CA, tmp_path: Path) -> None:
    cert, key = issue(client_ca, tmp_path, expired=True)
    host = mapped_host("cert-web03", client_ca)
    async with _serve(host, client_ca, tmp_path) as ep:
        with pytest.raises(Exception, match=r"(?i)ssl|certificate|connection"):
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {} and host.counters.requests == 0


async def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    trusted, foreign = trustme.CA(), trustme.CA()
    cert, key = issue(foreign, tmp_path)
    host = mapped_host("cert-web04", trusted)
    async with _serve(host, trusted, tmp_path) as ep:
        with pytest.raises(Exception):  # noqa: B017 - the TLS alert surfaces as requests' SSLError
            await in_thread(_pywinrm, ep, cert, key)
    assert host.logons == {}


def test_tls_context_only_asks_for_a_certificate() -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    request_client_certificates(ctx, trustme.CA().cert_pem.bytes())
    assert ctx.verify_mode == ssl.CERT_OPTIONAL  # hosts without a client certificate still get NTLM/Kerberos
