"""`fleetcheck run -i hosts.ini` against a lab fleet: an Ansible INI inventory with group_vars
and a non-Windows host, checked end to end."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from fleetcheck.inventory import load_inventory
from fleetcheck.lab.fleet import LabFleet


async def test_run_with_an_ansible_ini_inventory(tmp_path: Path) -> None:
    async with LabFleet(hosts=3, mix={"healthy-2019": 3}, seed=3) as fleet:
        native = load_inventory(fleet.write_inventory(tmp_path / "lab.yml"))
        lines = ["localhost ansible_connection=local", "", "[windows]"]
        lines += [f"{h.name} ansible_host={h.address}" + (f" ansible_port={h.port}" if h.port else "") for h in native.hosts]
        (tmp_path / "hosts.ini").write_text("\n".join(lines) + "\n")
        (tmp_path / "group_vars").mkdir()
        (tmp_path / "group_vars" / "windows.yml").write_text(
            f"ansible_connection: psrp\nansible_psrp_protocol: http\nansible_psrp_auth: negotiate\n"
            f"ansible_user: {fleet.username}\nfleetcheck_password_env: FC_E2E_PW\n"
        )
        env = os.environ | {"FC_E2E_PW": fleet.password, "COLUMNS": "200"}
        proc = await asyncio.create_subprocess_exec(  # the lab answers on this event loop: never block it
            sys.executable, "-m", "fleetcheck", "run", "-i", str(tmp_path / "hosts.ini"), "--no-history",
            "--timeout", "30", "--journal", str(tmp_path / "j.jsonl"), "--report", f"json:{tmp_path / 'r.json'}",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, out + err
    assert "1 host skipped: not Windows remoting (local 1); --show-skipped to list" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert {h["host"]: h["status"] for h in report["hosts"]} == {h.name: "compliant" for h in native.hosts}
    assert fleet.password not in out + err


async def test_run_with_a_vaulted_password(tmp_path: Path) -> None:
    """The password reaches the host only through an ansible-vault value (made by the real ansible-vault)."""
    from fleetcheck.yamlfile import load_yaml

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "inventories" / "vault-inline"
    ciphertext = load_yaml(fixture / "hosts.yml")["windows"]["vars"]["ansible_password"].ciphertext
    async with LabFleet(hosts=2, mix={"healthy-2019": 2}, seed=4, password="S3cret-Inline!") as fleet:
        native = load_inventory(fleet.write_inventory(tmp_path / "lab.yml"))
        hosts = {h.name: {"ansible_host": h.address, **({"ansible_port": h.port} if h.port else {})} for h in native.hosts}
        vaulted = "\n".join("      " + line for line in ciphertext.strip().splitlines())
        (tmp_path / "hosts.yml").write_text(
            f"windows:\n  vars:\n    ansible_connection: psrp\n    ansible_psrp_protocol: http\n"
            f"    ansible_user: {fleet.username}\n    ansible_password: !vault |\n{vaulted}\n"
            f"  hosts: {json.dumps(hosts)}\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "FLEETCHECK_LAB_PASSWORD"} | {"COLUMNS": "200"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetcheck", "run", "-i", str(tmp_path / "hosts.yml"), "--no-history",
            "--vault-password-file", str(fixture / "vault-pass.txt"), "--timeout", "30",
            "--journal", str(tmp_path / "j.jsonl"), "--report", f"json:{tmp_path / 'r.json'}",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, out + err
    report = json.loads((tmp_path / "r.json").read_text())
    assert {h["status"] for h in report["hosts"]} == {"compliant"}
    assert "S3cret-Inline!" not in out + err + (tmp_path / "r.json").read_text() + (tmp_path / "j.jsonl").read_text()
