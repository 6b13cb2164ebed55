"""Inventory keys for Kerberos (SPN host and service, keytab, ticket cache) and certificate auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.inventory import InventoryError, load_inventory


def _write(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_native_keys(tmp_path: Path) -> None:
    inv = load_inventory(
        _write(
            tmp_path,
            "vars: {auth: kerberos, kerberos_keytab: /etc/fc.keytab}\n"
            "hosts:\n"
            "  web01: {address: 10.0.0.5, negotiate_hostname_override: web01.corp.example, negotiate_service: HTTP}\n"
            "  web02: {kerberos_ccache: 'FILE:/tmp/cc'}\n",
        )
    )
    web01, web02 = inv.host("web01"), inv.host("web02")
    assert (web01.negotiate_hostname_override, web01.negotiate_service) == ("web01.corp.example", "HTTP")
    assert web01.kerberos_keytab == Path("/etc/fc.keytab")
    assert (web02.negotiate_service, web02.kerberos_ccache, web02.negotiate_hostname_override) == ("WSMAN", "FILE:/tmp/cc", None)


def test_service_must_be_wsman_or_http(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(_write(tmp_path, "hosts:\n  a: {auth: kerberos, negotiate_service: HOST}\n"))
    assert "negotiate_service" in str(caught.value) and "line 2" in str(caught.value)


def test_certificate_needs_cert_and_key(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cert_path and key_path"):
        load_inventory(_write(tmp_path, "hosts:\n  a: {auth: certificate, cert_path: /c.pem}\n"))
    host = load_inventory(_write(tmp_path, "hosts:\n  a: {auth: certificate, cert_path: /c.pem, key_path: /c.key}\n")).host("a")
    assert (host.cert_path, host.key_path) == (Path("/c.pem"), Path("/c.key"))


def test_ansible_variables(tmp_path: Path) -> None:
    text = (
        "all:\n  hosts:\n"
        "    psrp1:\n      ansible_host: 10.0.0.7\n      ansible_connection: psrp\n      ansible_psrp_auth: kerberos\n"
        "      ansible_psrp_negotiate_hostname_override: psrp1.corp.example\n      ansible_psrp_negotiate_service: http\n"
        "    winrm1:\n      ansible_connection: winrm\n      ansible_winrm_transport: kerberos\n"
        "      ansible_winrm_kerberos_hostname_override: winrm1.corp.example\n"
        "    cert1:\n      ansible_connection: winrm\n      ansible_winrm_transport: certificate\n"
        "      ansible_winrm_cert_pem: /c.pem\n      ansible_winrm_cert_key_pem: /c.key\n"
    )
    inv = load_inventory(_write(tmp_path, text, "hosts.yml"))
    psrp1, winrm1, cert1 = inv.host("psrp1"), inv.host("winrm1"), inv.host("cert1")
    assert (psrp1.auth, psrp1.negotiate_hostname_override, psrp1.negotiate_service) == ("kerberos", "psrp1.corp.example", "HTTP")
    assert (winrm1.auth, winrm1.negotiate_hostname_override) == ("kerberos", "winrm1.corp.example")
    assert (cert1.auth, cert1.cert_path, cert1.key_path) == ("certificate", Path("/c.pem"), Path("/c.key"))


def test_inventory_command_names_the_credential_source(tmp_path: Path) -> None:
    from fleetcheck.inventory.show import password_source

    inv = load_inventory(
        _write(
            tmp_path,
            "vars: {auth: kerberos}\nhosts:\n  a: {kerberos_keytab: /k.keytab}\n  b: {kerberos_ccache: 'FILE:/c'}\n  c: {}\n"
            "  d: {auth: certificate, cert_path: /c.pem, key_path: /c.key}\n",
        )
    )
    assert [password_source(inv.host(n)) for n in "abcd"] == [
        "keytab:/k.keytab", "ticket cache:FILE:/c", "ticket cache / none", "cert:/c.pem",
    ]
