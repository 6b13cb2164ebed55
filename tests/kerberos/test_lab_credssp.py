"""CredSSP (NTLM or Kerberos inside TLS, then the delegated credential) with the lab as acceptor.

Real clients: pypsrp (pyspnego's CredSSP initiator) and pywinrm (requests-credssp). CredSSP
is off by default on Windows; these hosts switch it on (winrm/config/service/auth/CredSSP).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from krb_helpers import LOCAL_PASSWORD, LOCAL_USER, PASSWORD, USER, Endpoint, domain_host, in_thread, serve
from pypsrp.client import Client

from fleetcheck.lab.kdc import LabRealm

#: A request and a response above 16 KiB: both sides send them in 16 KiB CredSSP parts.
BIG = "Write-Output '" + "x" * 40000 + "'"


def _psrp(ep: Endpoint, script: str, **kwargs: Any) -> str:
    client = Client(
        ep.address,
        port=ep.port,
        ssl=ep.https,
        auth="credssp",
        cert_validation=ep.ca_path if ep.https else False,
        read_timeout=10,
        operation_timeout=5,
        reconnection_retries=0,
        **kwargs,
    )
    out, _, had_errors = client.execute_ps(script)
    assert not had_errors
    return str(out)


@pytest.mark.parametrize("https", [False, True], ids=["http-encrypted", "https"])
async def test_pypsrp_credssp_ntlm_inside(https: bool, tmp_path: Path) -> None:
    host = domain_host(None, "cssp-web01", credssp_auth=True)
    async with serve(host, https=https, tmp_path=tmp_path) as ep:
        out = await in_thread(functools.partial(_psrp, ep, "whoami", username=LOCAL_USER, password=LOCAL_PASSWORD))
        big = await in_thread(functools.partial(_psrp, ep, BIG, username=LOCAL_USER, password=LOCAL_PASSWORD))
    assert out == "cssp-web01\\fleetcheck"
    assert big == "x" * 40000
    assert host.logons == {"credssp": 2} and host.delegations == 2


async def test_pypsrp_credssp_kerberos_inside(krb_env: LabRealm) -> None:
    """pypsrp's CredSSP has no SPN override, so the host is reached by a name that resolves
    everywhere: `localhost`, with HTTP/localhost in this host's keytab."""
    host = domain_host(None, "cssp-web02", credssp_auth=True)
    host.kerberos_keytab = krb_env.keytabs.get("localhost") or krb_env.add_host("localhost")
    async with serve(host) as ep:
        ep.address = "localhost"
        out = await in_thread(
            functools.partial(
                _psrp, ep, "whoami", username=f"{USER}@{krb_env.realm}", password=PASSWORD, credssp_auth_mechanism="kerberos"
            )
        )
    assert out == "fleetcheck\\alice"
    assert host.logons == {"credssp": 1}


async def test_credssp_is_off_by_default() -> None:
    host = domain_host(None, "cssp-web03")
    async with serve(host) as ep:
        with pytest.raises(Exception):  # noqa: B017 - pypsrp raises its own auth error type
            await in_thread(functools.partial(_psrp, ep, "whoami", username=LOCAL_USER, password=LOCAL_PASSWORD))
    assert host.logons == {} and host.delegations == 0


async def test_credssp_wrong_password_is_rejected() -> None:
    host = domain_host(None, "cssp-web04", credssp_auth=True)
    async with serve(host) as ep:
        with pytest.raises(Exception):  # noqa: B017
            await in_thread(functools.partial(_psrp, ep, "whoami", username=LOCAL_USER, password="wrong-" + LOCAL_PASSWORD))
    assert host.logons == {} and host.delegations == 0


async def test_pywinrm_credssp(tmp_path: Path) -> None:
    winrm = pytest.importorskip("winrm")
    pytest.importorskip("requests_credssp", reason="pywinrm's CredSSP needs requests-credssp (fleetcheck[credssp])")
    host = domain_host(None, "cssp-web05", credssp_auth=True)
    async with serve(host, https=True, tmp_path=tmp_path) as ep:

        def run() -> tuple[str, int]:
            session = winrm.Session(
                ep.url, auth=(LOCAL_USER, LOCAL_PASSWORD), transport="credssp", ca_trust_path=ep.ca_path,
                read_timeout_sec=10, operation_timeout_sec=5,
            )
            result = session.run_cmd("whoami")
            return result.std_out.decode().strip(), result.status_code

        out, code = await in_thread(run)
    assert (out, code) == ("cssp-web05\\fleetcheck", 0)
    assert host.logons == {"credssp": 1} and host.delegations == 1
