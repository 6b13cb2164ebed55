"""Settings shared by every test folder.

Kerberos stays inside the tests that ask for it. Installing Debian's krb5 packages (as CI does
for the Kerberos tests) writes an /etc/krb5.conf whose default realm names MIT's public KDCs;
a Negotiate login that has gssapi available would then try Kerberos first and wait on DNS
for KDCs this machine can never reach. Every test process gets a krb5.conf with no realm and
no DNS look-ups instead, so Negotiate falls back to NTLM at once, as it does on a host outside
any domain. The Kerberos tests set their own KRB5_CONFIG for their throw-away realm.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_NO_REALM = """[libdefaults]
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
"""


def _isolate_kerberos() -> None:
    conf = Path(tempfile.gettempdir()) / f"fleetcheck-tests-krb5-{os.getuid()}.conf"
    if not conf.exists() or conf.read_text() != _NO_REALM:
        staged = conf.with_name(f"{conf.name}.{os.getpid()}")
        staged.write_text(_NO_REALM)
        os.replace(staged, conf)  # parallel test workers never read a half-written file
    os.environ["KRB5_CONFIG"] = str(conf)
    os.environ.setdefault("KRB5CCNAME", f"FILE:{conf.with_suffix('.ccache')}")


_isolate_kerberos()
