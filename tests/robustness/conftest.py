"""Lab helpers for the robustness suite: a LabFleet's inventory loaded the way `fleetcheck run` loads it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.loader import load_credentials, load_inventory
from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet


def load_fleet_hosts(fleet: LabFleet, tmp_path: Path, transport: str = "psrp", **kw: Any) -> list[Host]:
    """Write the fleet's inventory, load it and fill the password from the lab's variable."""
    inv = fleet.write_inventory(tmp_path / f"lab-{transport}.yml", transport=transport, **kw)  # type: ignore[arg-type]
    hosts = load_inventory(inv).hosts
    return load_credentials(hosts, environ={PASSWORD_ENV: fleet.password})


@pytest.fixture
def fleet_hosts() -> Callable[..., list[Host]]:
    return load_fleet_hosts


@pytest.fixture
def playbooks() -> Sequence[Any]:
    from fleetcheck.playbook import load_playbook

    return [load_playbook("system-state-backup")]
