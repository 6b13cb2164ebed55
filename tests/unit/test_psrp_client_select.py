"""Which PSRP client a host gets, and the native client's refusals before any connection."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.errors import AuthRejected
from fleetcheck.inventory.model import Host
from fleetcheck.transports.errors import FailureContext, classify
from fleetcheck.transports.psrp_client.transport import NativePsrpTransport
from fleetcheck.transports.target import PsrpSettings, Target


def _host(**kw: Any) -> Host:
    base: dict[str, Any] = {
        "name": "h",
        "address": "127.0.0.1",
        "scheme": "http",
        "username": "u",
        "password": SecretStr("Passw0rd!"),
    }
    return Host(**{**base, **kw})


def _target(**kw: Any) -> Target:
    return _host(**kw).to_target()


def _settings(target: Target) -> PsrpSettings:
    assert isinstance(target.settings, PsrpSettings)
    return target.settings


def test_native_is_the_default_and_pypsrp_stays_selectable() -> None:
    from fleetcheck.playbook import load_playbook
    from fleetcheck.runner import RunOptions, _Fleet, build_plan
    from fleetcheck.transports import transport_name
    from fleetcheck.transports.psrp import PsrpTransport
    from fleetcheck.transports.winrm import WinrmTransport

    plan = build_plan([load_playbook("system-state-backup")])
    default, pyp = _target(), _target(psrp_client="pypsrp")
    assert _settings(default).client == "native" and PsrpSettings().client == "native"
    fleet = _Fleet([default, pyp], [], plan, RunOptions())
    assert [transport_name(h) for h in (default, pyp)] == ["psrp:native", "psrp"]
    assert isinstance(fleet.transport_for(default), NativePsrpTransport)
    assert isinstance(fleet.transport_for(pyp), PsrpTransport)
    forced = _Fleet([default], [], plan, RunOptions(psrp_client="pypsrp"))
    assert transport_name(default, "pypsrp") == "psrp"
    assert isinstance(forced.transport_for(default), PsrpTransport)
    assert isinstance(forced.transport_for(_target(transport="winrm")), WinrmTransport)
    fleet.close()
    forced.close()


def test_inventory_psrp_client_key(tmp_path: Any) -> None:
    from fleetcheck.inventory.errors import InventoryError
    from fleetcheck.inventory.loader import load_inventory

    good = tmp_path / "inv.yml"
    good.write_text("hosts:\n  a: {}\n  b: {psrp_client: pypsrp}\n")
    hosts = {h.name: h.psrp_client for h in load_inventory(good).hosts}
    assert hosts == {"a": "native", "b": "pypsrp"}
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts:\n  a:\n    psrp_client: fast\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(bad)
    assert str(exc.value).endswith("line 3: 'hosts.a.psrp_client': got 'fast'; expected 'pypsrp' or 'native'")


def test_basic_over_http_refused_like_pypsrp() -> None:
    target = _target(auth="basic")
    with pytest.raises(AuthRejected) as exc:
        NativePsrpTransport().credentials(target, _settings(target))
    assert exc.value.error_type == "auth_config"
    assert exc.value.message == classify(ValueError(
        "Cannot use message encryption with auth 'basic', either set encryption='never', use ssl=True "
        "or use one of the following auth providers: credssp, kerberos, negotiate, ntlm"
    ), FailureContext(auth="basic")).message  # the same sentence pypsrp's refusal maps to


def test_missing_password_is_an_auth_config_error() -> None:
    target = _target(password=None, auth="ntlm")  # (negotiate without a password means a Kerberos ticket cache)
    with pytest.raises(AuthRejected) as exc:
        NativePsrpTransport().credentials(target, _settings(target))
    assert exc.value.error_type == "auth_config"


def test_credssp_and_certificate_go_to_pypsrp_kerberos_is_native_negotiate_is_ntlm() -> None:
    t = NativePsrpTransport()
    for auth in ("credssp", "certificate"):
        target = _target(auth=auth, cert_path="/c.pem", key_path="/c.key")
        assert t.credentials(target, _settings(target)) is None
    target = _target(auth="kerberos")
    kerberos = t.credentials(target, _settings(target))
    assert kerberos is not None and kerberos.method == "kerberos" and kerberos.kerberos is not None
    target = _target(auth="negotiate")
    creds = t.credentials(target, _settings(target))
    assert creds is not None and creds.method == "ntlm" and creds.nt_hash is not None
