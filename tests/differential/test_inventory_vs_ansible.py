"""Differential test: every corpus inventory resolved by fleetcheck and by the real Ansible.

For each case under tests/fixtures/inventories/ (see SOURCES.md there): `ansible-inventory
-i SOURCE --list` gives hosts and groups; Ansible's own VariableManager + Templar (oracle
script) gives the final value of every connection variable, templates rendered and vaults
decrypted. fleetcheck must agree on the hosts, each group's members and children, and on
every connection variable it maps, and must derive address, user and port from them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.inventory import load_inventory
from fleetcheck.inventory.ansible import MAPPED
from fleetcheck.inventory.export import inventory_json
from fleetcheck.inventory.loader import Inventory
from fleetcheck.inventory.vault import vault_secrets

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
ORACLE = Path(__file__).with_name("ansible_oracle.py")
KEYS = sorted({*MAPPED, "ansible_connection", "ansible_shell_type"})
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def source_of(case: Path) -> Path:
    found = [p for p in case.iterdir() if p.name.startswith(("hosts", "inventory"))]
    assert len(found) == 1, f"{case}: exactly one hosts* or inventory* entry expected"
    return found[0]


def _env(tmp: Path) -> dict[str, str]:
    config = tmp / "ansible.cfg"
    config.write_text("[defaults]\n")
    return {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_HOME": str(tmp / "home"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "ANSIBLE_DEPRECATION_WARNINGS": "0"}


def ansible_view(binary: Path, source: Path, password: Path | None, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    env = _env(tmp)
    args = [str(binary / "ansible-inventory"), "-i", str(source), "--list"]
    if password:
        args += ["--vault-password-file", str(password)]
    listing = subprocess.run(args, capture_output=True, text=True, cwd=tmp, env=env, timeout=120, check=False)
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    if not needs_templar(source.parent):  # --list hostvars are already final
        hostvars = data["_meta"]["hostvars"]
        hosts = {h for body in data.values() if isinstance(body, dict) for h in body.get("hosts", [])}
        return data, {h: {k: v for k, v in hostvars.get(h, {}).items() if k in KEYS} for h in hosts}
    oracle = subprocess.run([str(binary / "python"), str(ORACLE), str(source), str(password or ""), ",".join(KEYS)],
                            capture_output=True, text=True, cwd=tmp, env=env, timeout=120, check=False)
    assert oracle.returncode == 0, oracle.stderr
    return data, json.loads(oracle.stdout)


def needs_templar(case: Path) -> bool:
    """Templates and vault values print unrendered in --list; only Ansible's templar gives their value."""
    texts = (p.read_text(errors="replace") for p in case.rglob("*") if p.is_file())
    return any("{{" in text or "$ANSIBLE_VAULT" in text for text in texts)


def ansible_groups(listing: dict[str, Any]) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """(direct hosts, children, all members through children) per group, from --list output."""
    named = {g for g in listing if g != "_meta"} | {c for g, b in listing.items() if g != "_meta" for c in b.get("children", [])}
    direct = {g: set(listing.get(g, {}).get("hosts", [])) for g in named}  # --list leaves empty groups out
    children = {g: set(listing.get(g, {}).get("children", [])) for g in named}

    def members(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out = set(direct.get(group, set()))
        for child in children.get(group, set()) - seen:
            out |= members(child, seen | {group})
        return out

    return direct, children, {g: members(g) for g in direct}


#: The `vars:` of each connection plugin's options in ansible-core 2.19, in order (the last set wins).
PLUGIN_VARS = {
    "ssh": {"address": ["ansible_host", "ansible_ssh_host"], "user": ["ansible_user", "ansible_ssh_user"],
            "port": ["ansible_port", "ansible_ssh_port"],
            "password": ["ansible_password", "ansible_ssh_pass", "ansible_ssh_password"]},
    "winrm": {"address": ["ansible_host", "ansible_winrm_host"], "user": ["ansible_user", "ansible_winrm_user"],
              "port": ["ansible_port", "ansible_winrm_port"],
              "password": ["ansible_password", "ansible_winrm_pass", "ansible_winrm_password"]},
    "psrp": {"address": ["ansible_host", "ansible_psrp_host"], "user": ["ansible_user", "ansible_psrp_user"],
             "port": ["ansible_port", "ansible_psrp_port"],
             "password": ["ansible_password", "ansible_winrm_pass", "ansible_winrm_password"]},
}


def _last(values: dict[str, Any], names: list[str]) -> Any:
    found = [values[n] for n in names if values.get(n) is not None]
    return found[-1] if found else None


def _value(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def compare(inv: Inventory, listing: dict[str, Any], oracle: dict[str, dict[str, Any]]) -> list[str]:
    """Structure from `fleetcheck inventory --json` (the export), values from the resolved hosts."""
    problems: list[str] = []
    direct, children, members = ansible_groups(listing)
    exported = json.loads(json.dumps(inventory_json(inv)))
    ours_direct, ours_children, ours_members = ansible_groups(exported)
    ours = set(exported["_meta"]["hostvars"]) | set(exported["_meta"]["skipped"])
    if ours != members["all"] or ours_members["all"] != ours:
        problems.append(f"hosts differ: only fleetcheck {sorted(ours - members['all'])}, only Ansible {sorted(members['all'] - ours)}")
    if set(ours_direct) != set(direct):
        problems.append(f"groups differ: fleetcheck {sorted(ours_direct)}, Ansible {sorted(direct)}")
    for group in set(direct) & set(ours_direct):
        for what, mine, theirs in (("members", ours_members, members), ("hosts named", ours_direct, direct),
                                   ("children", ours_children, children)):
            if mine[group] != theirs[group]:
                problems.append(f"{what} of {group}: fleetcheck {sorted(mine[group])}, Ansible {sorted(theirs[group])}")
        if group != "all" and set(inv.groups[group]) != members[group]:
            problems.append(f"Inventory.groups[{group}] {sorted(inv.groups[group])} != Ansible {sorted(members[group])}")
    raw = listing["_meta"]["hostvars"]
    for host in inv.hosts:
        final = oracle[host.name]
        secret = {k for k, v in inv.connection_vars.get(host.name, {}).items() if isinstance(v, SecretStr)}
        mine = {k: _value(v) for k, v in inv.connection_vars.get(host.name, {}).items()}
        for key in set(mine) | {k for k in final if k in MAPPED}:
            theirs = str(final.get(key)) if key in secret else final.get(key)  # a vaulted value is kept as text
            if mine.get(key) != theirs:
                problems.append(f"{host.name}.{key}: fleetcheck {mine.get(key)!r}, Ansible {final.get(key)!r}")
            listed = raw.get(host.name, {}).get(key)
            if isinstance(listed, int | str) and "{{" not in str(listed) and listed != final.get(key):
                problems.append(f"{host.name}.{key}: ansible-inventory --list {listed!r} vs Ansible templar {final.get(key)!r}")
        plugin = PLUGIN_VARS[host.transport]
        address = _last(final, plugin["address"]) or host.name
        if host.address != str(address):
            problems.append(f"{host.name}: address {host.address!r}, Ansible connects to {address!r}")
        user = _last(final, plugin["user"])
        if user is not None and host.username != str(user):
            problems.append(f"{host.name}: user {host.username!r}, Ansible {user!r}")
        port = _last(final, plugin["port"])
        if port is not None and host.effective_port != int(port):
            problems.append(f"{host.name}: port {host.effective_port}, Ansible {port!r}")
        password = _last(final, plugin["password"])
        if password is not None and (host.password is None or host.password.get_secret_value() != str(password)):
            problems.append(f"{host.name}: password differs from Ansible's")
    for name, reason in inv.skipped.items():
        connection = str(oracle[name].get("ansible_connection", "ssh")).rsplit(".", 1)[-1]
        shell = oracle[name].get("ansible_shell_type", "sh")
        if connection in ("winrm", "psrp") or (connection in ("ssh", "paramiko") and shell in ("powershell", "cmd")):
            problems.append(f"{name} skipped ({reason}) though Ansible reaches it by {connection}/{shell}")
    return problems


@pytest.mark.parametrize("case", CASES)
def test_fleetcheck_resolves_like_ansible(
    case: str, ansible_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETCHECK_ANSIBLE_INVENTORY", str(ansible_bin / "ansible-inventory"))  # dynamic sources
    folder = CORPUS / case
    source = source_of(folder)
    password = folder / "vault-pass.txt" if (folder / "vault-pass.txt").exists() else None
    listing, oracle = ansible_view(ansible_bin, source, password, tmp_path)
    inv = load_inventory(source, secrets=vault_secrets([password] if password else [], environ={}))
    assert compare(inv, listing, oracle) == []


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
