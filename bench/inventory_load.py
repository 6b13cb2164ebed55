"""Inventory loading: a 5,000-host INI inventory with group_vars, and hostile inventories.

    python -m bench.inventory_load [--hosts 5000] [--no-peer]

Each load runs in a fresh subprocess pinned to one core (taskset when present), best of 3;
the target is judged on the load's CPU time, which a machine shared with other work does not
inflate the way it inflates wall time (both are printed). The ideal is reading and splitting the same files with no
interpretation at all (a floor no parser beats); the peer is `ansible-inventory --list` on the
same inventory from the bench's peers venv. Hostile inventories (a YAML alias bomb, a 10^8-host
range, 10,000-deep group nesting, a 30 MB file) must be refused quickly with bounded memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 1.0

LOAD = """
import resource, sys, time
from pathlib import Path
t = time.perf_counter()
from fleetcheck.inventory import load_inventory
from fleetcheck.inventory.errors import InventoryError
t_import = time.perf_counter()
c_import = time.process_time()
try:
    inv = load_inventory(Path(sys.argv[1]))
    outcome = f"{len(inv.hosts)} hosts, {len(inv.skipped)} skipped, {len(inv.warnings)} warning lines"
except InventoryError as exc:
    outcome = "refused: " + str(exc)[:90]
done = time.perf_counter()
cpu = time.process_time() - c_import
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{done - t_import:.4f} {rss:.0f} {cpu:.4f} {outcome}")
"""

FLOOR = """
import sys, time, os
from pathlib import Path
t = time.perf_counter()
root = Path(sys.argv[1]).parent
n = 0
for path in [Path(sys.argv[1]), *sorted((root / "group_vars").glob("*"))]:
    for line in path.read_text().splitlines():
        n += len(line.split())
print(f"{time.perf_counter() - t:.4f} 0 floor")
"""


def peer_ansible_inventory() -> Path:
    """The differential tests' ansible-core venv when it exists, else the bench's peers venv."""
    made = sorted((REPO / ".venv-ansible").glob("*/bin/ansible-inventory"))
    if made:
        return made[-1]
    from bench.peers import ensure_peers_venv

    return ensure_peers_venv().parent / "ansible-inventory"


def one_core() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


def write_big(folder: Path, hosts: int) -> Path:
    """5,000 hosts in 50 site groups under 5 regions, Windows settings in group_vars."""
    lines = []
    sites = 50
    for site in range(sites):
        lines.append(f"[site{site:02d}]")
        per = hosts // sites
        lines += [f"win-{site:02d}-{i:04d}.corp.example.com ansible_host=10.{site}.{i // 250}.{i % 250 + 1}"
                  for i in range(per)]
    for region in range(5):
        lines.append(f"[region{region}:children]")
        lines += [f"site{s:02d}" for s in range(sites) if s % 5 == region]
    lines += ["[windows:children]", *[f"region{r}" for r in range(5)]]
    path = folder / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    gv = folder / "group_vars"
    gv.mkdir()
    (gv / "windows.yml").write_text("ansible_connection: psrp\nansible_psrp_auth: negotiate\nansible_user: svc\n"
                                    "fleetcheck_password_env: FC_PW\n")
    (gv / "all.yml").write_text("ansible_port: 5986\nansible_psrp_protocol: https\n")
    for region in range(5):
        (gv / f"region{region}.yml").write_text(f"region_name: r{region}\n")
    return path


def write_hostile(folder: Path) -> dict[str, Path]:
    out = {}
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    bomb.append("all: {hosts: {h: {bomb: *a9}}}")
    out["alias bomb (10^10 values)"] = folder / "bomb.yml"
    out["alias bomb (10^10 values)"].write_text("\n".join(bomb) + "\n")
    out["range of 10^8 hosts"] = folder / "range.ini"
    out["range of 10^8 hosts"].write_text("[w]\nweb[00000001:100000000]\n")
    deep = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(10_000)) + "[g10000]\nh1\n"
    out["10,000-deep nesting"] = folder / "deep.ini"
    out["10,000-deep nesting"].write_text(deep)
    upward = "[g10000]\nh1\n" + "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(9_999, -1, -1))
    out["10,000-deep, bottom-up"] = folder / "upward.ini"
    out["10,000-deep, bottom-up"].write_text(upward)
    out["30 MB file"] = folder / "huge.ini"
    out["30 MB file"].write_text("[w]\n" + ("h x=" + "y" * 1000 + "\n") * 30_000)
    return out


def timed(argv: list[str], runs: int = 3) -> tuple[float, str]:
    best, text = float("inf"), ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False, timeout=600)
        wall = time.perf_counter() - started
        if wall < best:
            best, text = wall, (done.stdout.strip() or done.stderr.strip()[-200:])
    return best, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "big").mkdir()
        big = write_big(folder / "big", args.hosts)
        py = [*one_core(), sys.executable, "-c"]
        wall, out = timed([*py, LOAD, str(big)])
        load_s, rss, cpu_s, *outcome = out.split(" ", 3)
        _, floor_out = timed([*py, FLOOR, str(big)])
        floor_s = float(floor_out.split()[0])
        print(f"{args.hosts}-host INI + group_vars, one core")
        cpu = float(cpu_s)
        print(f"  fleetcheck load_inventory: {float(load_s):.3f} s wall, {cpu:.3f} s CPU (process {wall:.2f} s, peak RSS "
              f"{rss} MB; {' '.join(outcome)}); target < {TARGET_S:.1f} s CPU: {'OK' if cpu < TARGET_S else 'MISSED'}")
        print(f"  ideal (read + split the same files): {floor_s:.3f} s -> fleetcheck is {float(load_s) / floor_s:.0f}x the floor")
        if not args.no_peer:
            peer = peer_ansible_inventory()
            peer_wall, _ = timed([*one_core(), str(peer), "-i", str(big), "--list"], runs=1)
            print(f"  peer ansible-inventory --list: {peer_wall:.2f} s (whole process) -> "
                  f"fleetcheck process is {peer_wall / wall:.1f}x faster")
        print("hostile inventories (refused before expanding):")
        for name, path in write_hostile(folder).items():
            _, text = timed([*py, LOAD, str(path)], runs=1)
            seconds, rss_h, _, *rest = text.split(" ", 3)
            print(f"  {name:28} {float(seconds):.3f} s, peak RSS {rss_h} MB: {' '.join(rest)}")
        print(json.dumps({"hosts": args.hosts, "load_wall_s": float(load_s), "load_cpu_s": cpu, "floor_s": floor_s}))


if __name__ == "__main__":
    main()
