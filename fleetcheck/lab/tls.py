"""TLS material for the lab's HTTPS listeners (trustme: a throwaway CA in memory).

`LabTLS.server_context(names)` gives the listener's `SSLContext` and the certificate DER
that channel binding hashes. The `tls_bad_cert` fault is made here too: a certificate for
the wrong name, or one signed by a CA the client does not trust.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass
class LabTLS:
    """One CA per fleet; clients are given `ca_pem` (or `write_ca(path)`)."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path

    def server_context(self, *names: str) -> tuple[ssl.SSLContext, bytes]:
        """(context, certificate DER) for a listener answering to `names` (IPs allowed)."""
        return _context_for(self.ca.issue_cert(*(names or ("127.0.0.1",))))

    def bad_cert_context(self, *names: str, kind: str = "wrong_name") -> tuple[ssl.SSLContext, bytes]:
        """`tls_bad_cert`: `wrong_name` (trusted CA, other host name) or `untrusted` (foreign CA)."""
        if kind == "untrusted":
            return _context_for(trustme.CA().issue_cert(*(names or ("127.0.0.1",))))
        return _context_for(self.ca.issue_cert("wrong-host.invalid"))


def _context_for(cert: trustme.LeafCert) -> tuple[ssl.SSLContext, bytes]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    return ctx, leaf.public_bytes(Encoding.DER)
