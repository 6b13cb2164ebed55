"""Dynamic sources (inventory plugin configs, executable scripts) resolved by Ansible itself.

fleetcheck runs `ansible-inventory -i SOURCE --list --export` as a subprocess, the way AWX
imports inventories, and reads its JSON: groups with their hosts, children and own vars, and
`_meta.hostvars` with each host's own vars. `--export` keeps group vars on their groups, so a
directory mixing a dynamic source with static files merges them in Ansible's order (without it,
Ansible flattens group vars into every host, where they would beat a later file's group vars).
Without Ansible installed the error names what is missing instead of guessing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import Origin, RawInventory

TIMEOUT_S = 300.0
MAX_OUTPUT = 200 * 1024 * 1024


def ansible_inventory_command() -> str | None:
    """`$FLEETCHECK_ANSIBLE_INVENTORY`, else `ansible-inventory` on PATH."""
    return os.environ.get("FLEETCHECK_ANSIBLE_INVENTORY") or shutil.which("ansible-inventory")


def run_ansible_inventory(source: Path, what: str, vault_files: list[str] | None = None) -> dict[str, Any]:
    command = ansible_inventory_command()
    if command is None:
        raise InventoryError(
            source, None, None, f"{what} needs Ansible to resolve it, and ansible-inventory is not installed",
            "pip install ansible-core (plus the collection that provides the plugin), "
            "or set FLEETCHECK_ANSIBLE_INVENTORY to its path",
        )
    args = [command, "-i", str(source), "--list", "--export"]
    for item in vault_files or []:
        args += ["--vault-password-file", item]
    try:
        done = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InventoryError(source, None, None, f"ansible-inventory did not finish in {TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise InventoryError(source, None, None, f"cannot run {command}: {exc.strerror}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise InventoryError(source, None, None, f"ansible-inventory failed (exit {done.returncode}): " + " | ".join(tail)[:500])
    if len(done.stdout) > MAX_OUTPUT:
        raise InventoryError(source, None, None, "ansible-inventory printed more than 200 MB")
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise InventoryError(source, None, None, f"ansible-inventory printed no JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InventoryError(source, None, None, "ansible-inventory printed JSON that is not a mapping")
    return data


def read_listing(data: dict[str, Any], source: Path, inv: RawInventory) -> None:
    """Add `ansible-inventory --list --export` output: group vars on groups, host vars on hosts."""
    origin = Origin(f"ansible-inventory -i {source}")
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    for name, body in data.items():
        if name == "_meta" or not isinstance(body, dict):
            continue
        inv.add_group(str(name), origin)
    for name, body in data.items():
        if name == "_meta" or not isinstance(body, dict):
            continue
        for child in body.get("children") or []:
            inv.add_group(str(child), origin)
            if str(child) not in inv.groups[str(name)].children:
                inv.add_child(str(name), str(child), origin)
        for host in body.get("hosts") or []:
            inv.add_host(str(host), str(name) if name != "all" else None, origin)
        for key, value in (body.get("vars") or {}).items():
            inv.set_group_var(str(name), str(key), value, origin)
    for host, values in hostvars.items():
        if host not in inv.hosts:
            inv.add_host(str(host), None, origin)
        for key, value in (values or {}).items():
            inv.set_host_var(str(host), str(key), value, origin)
