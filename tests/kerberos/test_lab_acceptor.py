"""The lab's Kerberos acceptor step by step, and fleetcheck's native client on a Kerberos-only listener."""

from __future__ import annotations

import base64
from pathlib import Path

import spnego
from krb_helpers import PASSWORD, USER, domain_host, fqdn, serve

from fleetcheck.lab.auth import ConnectionAuth
from fleetcheck.lab.kdc import LabRealm


def test_final_token_gives_mutual_authentication(krb_env: LabRealm, tmp_path: Path) -> None:
    """The 200 carries the AP-REP: only with it does the client know it talked to the real host."""
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-acc01")
    client = spnego.client(hostname=fqdn("kdc-acc01"), service="WSMAN", protocol="kerberos")
    step = ConnectionAuth(host.machine, None, False, host.kerberos_keytab).step(
        "Kerberos " + base64.b64encode(client.step() or b"").decode()
    )
    assert (step.outcome, step.mechanism, step.principal) == ("ok", "kerberos", "FLEETCHECK\\alice")
    assert step.token and not client.complete
    client.step(base64.b64decode(step.token))
    assert client.complete


def test_host_without_keytab_rejects_kerberos(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    domain_host(krb_env, "kdc-acc02")
    client = spnego.client(hostname=fqdn("kdc-acc02"), service="WSMAN", protocol="kerberos")
    workgroup = domain_host(None, "kdc-acc02")  # same name, never joined: no keytab
    auth = ConnectionAuth(workgroup.machine, None, False, None)
    assert auth.step("Negotiate " + base64.b64encode(client.step() or b"").decode()).outcome == "reject"


async def test_native_client_on_a_kerberos_only_listener(krb_env: LabRealm, tmp_path: Path) -> None:
    """Negotiate switched off on the host: the native client answers `Kerberos` and frames its
    messages as application/HTTP-Kerberos-session-encrypted (plain HTTP, so only sealed works)."""
    from fleetcheck.inventory.model import Host
    from fleetcheck.transports.psrp_client.transport import NativePsrpTransport

    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    host = domain_host(krb_env, "kdc-acc03", negotiate_auth=False, basic_auth=False)
    async with serve(host) as ep:
        target = Host(
            name="kdc-acc03", address=ep.address, port=ep.port, scheme="http", auth="kerberos", psrp_client="native",
            negotiate_hostname_override=ep.fqdn,
        ).to_target()
        out = await NativePsrpTransport().run(target, "whoami", "{}", timeout=20)
    assert out.stdout.strip() == "fleetcheck\\alice" and out.auth_mechanism == "kerberos"
    assert host.logons == {"kerberos": 1}
