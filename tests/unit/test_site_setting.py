"""The `site` setting: any level of the native format, `fleetcheck_site` in Ansible's."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.inventory import load_inventory
from fleetcheck.inventory.errors import InventoryError


def test_site_is_inherited_overridden_and_defaults_to_local(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "groups:\n"
        "  dmz:\n"
        "    vars: {site: dmz-east}\n"
        "    hosts:\n"
        "      web01: {}\n"
        "      web02: {site: dmz-west}\n"
        "hosts:\n"
        "  dc01: {}\n"
    )
    by_name = {h.name: h for h in load_inventory(inv).hosts}
    assert {n: h.site for n, h in by_name.items()} == {"web01": "dmz-east", "web02": "dmz-west", "dc01": "local"}
    assert by_name["web01"].to_target().site == "dmz-east"


def test_a_bad_site_name_points_at_its_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text("hosts:\n  dc01:\n    site: 'no spaces'\n")
    with pytest.raises(InventoryError, match="line 3"):
        load_inventory(inv)


def test_ansible_inventories_set_the_site_with_fleetcheck_site(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("[branch]\nsrv01\nsrv02 fleetcheck_site=branch-2\n\n[branch:vars]\nansible_connection=psrp\nfleetcheck_site=branch-1\n")
    by_name = {h.name: h.site for h in load_inventory(inv).hosts}
    assert by_name == {"srv01": "branch-1", "srv02": "branch-2"}
