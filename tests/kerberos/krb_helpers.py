"""Helpers for the Kerberos tests: a domain-joined lab host on a loopback port, and real clients."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleetcheck.lab.certauth import UPN_OID
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.kdc import DOMAIN, LAB_USER, LAB_USER_PASSWORD, REALM, LabRealm
from fleetcheck.lab.machine import CertMapping, LabUser, MachineState, WinRMSettings
from fleetcheck.lab.tls import LabTLS

USER = LAB_USER
PASSWORD = LAB_USER_PASSWORD
LOCAL_USER = "fleetcheck"
LOCAL_PASSWORD = "Lab-Passw0rd!"
_T = TypeVar("_T")


def fqdn(name: str) -> str:
    return f"{name.lower()}.{DOMAIN}"


def domain_host(realm: LabRealm | None, name: str, *, spn: bool = True, **winrm: Any) -> LabHost:
    """A lab host with the domain user alice and the local user fleetcheck; joined when `realm`."""
    state = MachineState(
        hostname=name.upper(),
        domain=DOMAIN,
        winrm=WinRMSettings(**winrm),
        users=[LabUser(name=USER, password=PASSWORD, domain=REALM), LabUser(name=LOCAL_USER, password=LOCAL_PASSWORD)],
    )
    host = LabHost(name=name, machine=state)
    if realm is not None:
        host.kerberos_keytab = realm.keytabs.get(fqdn(name)) or (realm.add_host(fqdn(name)) if spn else None)
    return host


@dataclass
class Endpoint:
    host: LabHost
    address: str
    port: int
    https: bool
    ca_path: str | None = None

    @property
    def fqdn(self) -> str:
        return fqdn(self.host.name)

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.address}:{self.port}/wsman"


@contextlib.asynccontextmanager
async def serve(host: LabHost, *, https: bool = False, tmp_path: Path | None = None) -> AsyncIterator[Endpoint]:
    """Run `host` on 127.0.0.1:<free port>; HTTPS with a trustme CA (valid for the IP and the FQDN)."""
    ctx = der = None
    ca_path = None
    if https:
        tls = LabTLS()
        ctx, der = tls.server_context("127.0.0.1", fqdn(host.name))
        assert tmp_path is not None
        ca_path = str(tls.write_ca(tmp_path / f"{host.name}-ca.pem"))
    server = await start_winrm_listener(host, "127.0.0.1", 0, tls=ctx, cert_der=der)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Endpoint(host, "127.0.0.1", port, https, ca_path)
    finally:
        await stop_listener(server)
        close_shells(host)


async def in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking client call while the lab keeps serving on this loop."""
    return await asyncio.to_thread(func, *args)


def join_fleet(fleet: Any, realm: LabRealm) -> None:
    """Join every host of an in-process LabFleet to the realm: its SPNs and keytab, and the domain
    user alice (as a domain's member servers accept domain accounts)."""
    for host in fleet.hosts.values():
        lab = host.lab
        assert lab is not None, "Kerberos fleets run in-process (workers=1)"
        name = fqdn(host.name)
        lab.kerberos_keytab = realm.keytabs.get(name) or realm.add_host(name)
        if not any(u.domain == REALM for u in lab.machine.users):
            lab.machine.users.append(LabUser(name=USER, password=PASSWORD, domain=REALM))


def kerberos_inventory(
    fleet: Any,
    path: Path,
    *,
    transport: str = "psrp",
    scheme: str = "http",
    source: str = "ccache",
    psrp_client: str = "pypsrp",
    realm: LabRealm | None = None,
    auth: str = "kerberos",
    by_name: bool = True,
) -> Path:
    """An inventory reaching the fleet with Kerberos: by address, the SPN host named by
    negotiate_hostname_override (`by_name=False` leaves it out: connecting by IP)."""
    import yaml

    top: dict[str, Any] = {"transport": transport, "scheme": scheme, "auth": auth, "timeout": 30}
    if transport == "psrp":
        top["psrp_client"] = psrp_client
    if source in ("password", "keytab"):
        top["username"] = f"{USER}@{REALM}"
    if source == "password":
        top["password_env"] = "FC_KRB_PASSWORD"
    if source == "keytab":
        assert realm is not None
        top["kerberos_keytab"] = realm.client_keytab(USER)
    if scheme == "https":
        assert fleet.ca_pem is not None
        ca = path.with_name(path.stem + "-ca.pem")
        ca.write_bytes(fleet.ca_pem)
        top["ca_path"] = str(ca)
    hosts = {}
    for h in fleet.hosts.values():
        entry: dict[str, Any] = {"address": h.address, "port": h.https_port if scheme == "https" else h.http_port}
        if by_name:
            entry["negotiate_hostname_override"] = fqdn(h.name)
        hosts[h.name] = entry
    path.write_text(yaml.safe_dump({"vars": top, "hosts": hosts}, sort_keys=False))
    return path


async def fleetcheck_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """`fleetcheck ...` as a subprocess, without blocking the lab's event loop."""
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetcheck", *args,
        cwd=cwd, env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return await proc.wait(), out.decode()


UPN = "fleetcheck@lab.test"


def issue_client_cert(ca: trustme.CA, tmp_path: Path, upn: str = UPN, *, expired: bool = False, name: str = "client") -> tuple[str, str]:
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
