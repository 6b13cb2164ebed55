"""`make demo`: a simulated fleet of 50 mixed Windows hosts, one real `fleetcheck run` against it.

The lab (fleetcheck.lab.LabFleet) serves from a background thread of this process on
loopback; the run is a separate `python -m fleetcheck run` process, exactly what an admin
types, so what you see is the product's own output and exit code. Hosts mix transports
(PSRP over HTTP, WinRS over HTTPS with the lab CA, PowerShell over SSH), scenarios from the
lab's library, and a few faulty hosts (refused, wrong password, hung) to show how one bad
host stays one row. The lab stops when the run ends, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import yaml

DEMO_HOSTS = 50
DEMO_TIMEOUT_S = 8
#: The last three hosts misbehave: nothing listens / the password is refused / a hung shell.
DEMO_FAULTS = "LAB-{a}:refuse,LAB-{b}:http401@auth,LAB-{c}:hang@Receive"


def demo_mix(scenarios: list[str]) -> dict[str, int]:
    """Mostly healthy servers, the rest spread over every broken scenario the lab knows."""
    healthy = [s for s in scenarios if s.startswith("healthy")] or scenarios[:1]
    mix = {s: 70 // len(healthy) for s in healthy}
    broken = [s for s in scenarios if s not in healthy]
    for name in broken:
        mix[name] = max(1, 30 // len(broken))
    return mix


def demo_faults(hosts: int) -> str:
    if hosts < 6:
        return ""
    return DEMO_FAULTS.format(a=f"{hosts - 2:04d}", b=f"{hosts - 1:04d}", c=f"{hosts:04d}")


def build_inventory(fleet_hosts: list[Any], ca_path: Path | None, username: str, password_env: str) -> dict[str, Any]:
    """A native inventory spreading the hosts over three transports (groups carry the settings)."""
    groups: dict[str, Any] = {
        "psrp-http": {"vars": {"transport": "psrp", "scheme": "http"}, "hosts": {}},
        "winrm-https": {
            "vars": {"transport": "winrm", "scheme": "https", "cert_validation": True, "ca_path": str(ca_path)},
            "hosts": {},
        },
        "ssh": {"vars": {"transport": "ssh", "auth": "password", "ssh_known_hosts": "accept"}, "hosts": {}},
    }
    for index, host in enumerate(sorted(fleet_hosts, key=lambda h: h.name)):
        slot = index % 10
        if slot < 6 or host.name >= f"LAB-{len(fleet_hosts) - 2:04d}" or (slot < 8 and ca_path is None):
            group, port, default = "psrp-http", host.http_port, 5985
        elif slot < 8 and host.https_port:
            group, port, default = "winrm-https", host.https_port, 5986
        elif host.ssh_port:
            group, port, default = "ssh", host.ssh_port, 22
        else:
            group, port, default = "psrp-http", host.http_port, 5985
        entry: dict[str, Any] = {"address": host.address}
        if port != default:
            entry["port"] = port
        groups[group]["hosts"][host.name] = entry
    return {
        "playbooks": ["system-state-backup"],
        "vars": {"username": username, "password_env": password_env, "timeout": DEMO_TIMEOUT_S},
        "groups": {name: body for name, body in groups.items() if body["hosts"]},
    }


class BackgroundLab:
    """Run a LabFleet's event loop in a daemon thread; start/stop from synchronous code."""

    def __init__(self, fleet: Any) -> None:
        self.fleet = fleet
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fleetcheck-lab", daemon=True)

    def _call(self, coro: Any, timeout: float) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self.thread.start()
        self._call(self.fleet.start(), timeout=120)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self.fleet.stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@contextlib.contextmanager
def running_lab(hosts: int, seed: int) -> Iterator[Any]:
    """Start the fleet; if loopback addresses are scarce (busy machine), fall back to ports."""
    from fleetcheck.lab.fleet import LabFleet, available_scenarios

    lab: BackgroundLab | None = None
    for addressing in ("auto", "ports"):
        fleet = LabFleet(
            hosts, mix=demo_mix(available_scenarios()), seed=seed, faults=demo_faults(hosts), https=True, ssh=True,
            addressing=addressing,
        )
        lab = BackgroundLab(fleet)
        try:
            lab.start()
            break
        except (OSError, RuntimeError, TimeoutError) as exc:
            lab.stop()
            lab = None
            if addressing == "ports":
                raise DemoError(f"could not start the lab fleet: {exc}") from None
            print(f"(loopback addresses unavailable: {exc}; using 127.0.0.1 with one port per host)", flush=True)
    assert lab is not None
    try:
        yield lab.fleet
    finally:
        lab.stop()


class DemoError(Exception):
    """The demo could not set itself up (not a fleetcheck result)."""


def run_demo(hosts: int = DEMO_HOSTS, seed: int = 7, workdir: Path | None = None, extra: list[str] | None = None) -> int:
    from fleetcheck.lab.fleet import PASSWORD_ENV

    with contextlib.ExitStack() as stack:
        work = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleetcheck-demo-")))
        work.mkdir(parents=True, exist_ok=True)
        print(f"Starting a simulated fleet of {hosts} Windows hosts on loopback...", flush=True)
        fleet = stack.enter_context(running_lab(hosts, seed))
        ca_path = None
        if fleet.ca_pem:
            ca_path = work / "lab-ca.pem"
            ca_path.write_bytes(fleet.ca_pem)
        inventory = work / "demo.yml"
        doc = build_inventory(list(fleet.hosts.values()), ca_path, fleet.username, PASSWORD_ENV)
        inventory.write_text(
            "# Written by `make demo` for the simulated lab fleet (not real servers).\n"
            + yaml.safe_dump(doc, sort_keys=False, width=200),
            encoding="utf-8",
        )
        reports = work / "reports"
        command = [
            sys.executable, "-m", "fleetcheck", "run", str(inventory),
            *([] if "--history" in (extra or []) else ["--no-history"]),
            "--journal", str(work / "journal.jsonl"),
            "--report", f"json:{reports / 'results.json'}",
            "--report", f"junit:{reports / 'junit.xml'}",
            "--report", f"csv:{reports / 'results.csv'}",
            "--report", f"markdown:{reports / 'results.md'}",
            *(extra or []),
        ]  # fmt: skip
        print(f"Lab ready ({fleet.addressing} addressing). Running: fleetcheck run {inventory.name}\n", flush=True)
        env = {**os.environ, PASSWORD_ENV: fleet.password}
        code = subprocess.run(command, env=env, check=False).returncode
        print(f"\nfleetcheck exited with code {code} ({_meaning(code)}).")
        if workdir is not None:
            print(f"Inventory and reports are in {work}")
        return code


def _meaning(code: int) -> str:
    return {
        0: "all hosts checked and compliant",
        1: "at least one check failed",
        2: "usage or configuration error",
        3: "at least one host could not be checked",
        4: "interrupted or internal error",
    }.get(code, "unexpected")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetcheck.lab.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=DEMO_HOSTS, help="fleet size (default 50)")
    parser.add_argument("--seed", type=int, default=7, help="scenario mix seed")
    parser.add_argument("--keep", type=Path, default=None, help="keep inventory and reports in this folder")
    args, extra = parser.parse_known_args(argv)
    try:
        code = run_demo(args.hosts, args.seed, args.keep, extra)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted; the lab is stopped.", file=sys.stderr)
        return 130
    # The demo fleet is broken on purpose (exit 1 or 3 is the expected answer); 2 and 4 are real problems.
    return 0 if code in (0, 1, 3) else code


if __name__ == "__main__":
    sys.exit(main())
