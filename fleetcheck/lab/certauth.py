"""WinRM certificate authentication (HTTPS only): the client's TLS certificate mapped to a local user.

The client announces it with `Authorization: http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual`
and presents its certificate in the TLS handshake. As Windows' certificate mapping does, the
lab reads the User Principal Name from the certificate's subjectAltName (otherName
1.3.6.1.4.1.311.20.2.3), requires the Client Authentication EKU and a current validity period,
and looks for a `certmapping` entry (subject + issuer) naming a local account.

The TLS listener asks for a certificate signed by the fleet's client CA (`CERT_OPTIONAL`), so an
unknown issuer or an expired certificate already fails in the handshake, as OpenSSL verifies
it there; a valid but unmapped certificate gets the 401 WinRM answers.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from fleetcheck.lab.machine import LabUser, MachineState

MUTUAL_PROFILE = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


def is_certificate_auth(authorization: str | None) -> bool:
    return bool(authorization) and authorization.strip().lower() == MUTUAL_PROFILE  # type: ignore[union-attr]


def request_client_certificates(ctx: ssl.SSLContext, client_ca_pem: bytes) -> ssl.SSLContext:
    """Make a listener's context ask for (not require) a client certificate from `client_ca_pem`."""
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
    return ctx


def upn(cert: x509.Certificate) -> str | None:
    """The certificate's User Principal Name (SAN otherName), decoded from its UTF8String."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.OtherName):
        if name.type_id == UPN_OID and len(name.value) > 2 and name.value[0] == 0x0C:
            length = name.value[1]
            if length < 0x80:
                return name.value[2 : 2 + length].decode("utf-8", errors="replace")
    return None


def _client_auth_eku(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku


def map_certificate(machine: MachineState, cert_der: bytes | None, now: dt.datetime | None = None) -> LabUser | None:
    """The local account the certificate maps to, or None (no cert, expired, no UPN/EKU, no mapping)."""
    if not cert_der or not machine.winrm.certificate_auth:
        return None
    cert = x509.load_der_x509_certificate(cert_der)
    now = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc or not _client_auth_eku(cert):
        return None
    name = upn(cert)
    if name is None:
        return None
    issuer = cert.issuer.rfc4514_string()
    for mapping in machine.winrm.cert_mappings:
        if mapping.issuer == issuer and fnmatch.fnmatch(name.lower(), mapping.subject.lower()):
            return next((u for u in machine.users if u.name.lower() == mapping.user.lower() and not u.domain), None)
    return None
