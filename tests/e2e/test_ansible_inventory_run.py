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
