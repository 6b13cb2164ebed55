"""Inventory values a transport cannot use are configuration errors at load (exit 2, file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.inventory.address import address_problem
from robustness.cli_helpers import cli

BAD_ADDRESSES = ["127.0.0.77/x", "#", "?", "host#frag", "host?q=1", "127.0.0.1:5985", "xn--zz.example", "a..b",
                 "-lead.example", "300.1.1.1", "a b", "a" * 64 + ".example"]
GOOD_ADDRESSES = ["127.0.0.1", "::1", "[::1]", "srv01", "SRV-01.corp.example.com", "exämple.com", "host."]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_address_is_refused_with_file_and_line(tmp_path: Path, address: str) -> None:
    inv = tmp_path / "inv.yml"
    quoted = address.replace("'", "''")
    inv.write_text(f"hosts:\n  ok1: {{address: 127.0.0.1}}\n  bad1: {{address: '{quoted}'}}\n", encoding="utf-8")
    code, out = cli("inventory", str(inv))
    assert code == 2, out
    assert "inv.yml, line 3" in out and "bad1.address" in out


@pytest.mark.parametrize("address", GOOD_ADDRESSES)
def test_good_address_is_accepted(address: str) -> None:
    assert address_problem(address) is None


def test_ansible_host_is_validated_too(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    web1:\n      ansible_host: 10.0.0.1/24\n      ansible_connection: winrm\n",
                   encoding="utf-8")
    code, out = cli("inventory", str(inv))
    assert code == 2 and "hosts.yml, line 4" in out and "ansible_host" in out, out
