"""`make demo` pieces that need no lab: the scenario mix, the faulty hosts, the mixed inventory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fleetcheck.inventory import load_inventory
from fleetcheck.lab.demo import build_inventory, demo_faults, demo_mix


@dataclass
class FakeHost:
    name: str
    address: str
    http_port: int = 5985
    https_port: int | None = 5986
    ssh_port: int | None = 22


def test_mix_is_mostly_healthy_and_uses_every_scenario() -> None:
    mix = demo_mix(["healthy-2019", "wsb-missing", "vss-broken", "healthy-2022"])
    assert set(mix) == {"healthy-2019", "wsb-missing", "vss-broken", "healthy-2022"}
    healthy = mix["healthy-2019"] + mix["healthy-2022"]
    assert healthy > 2 * (mix["wsb-missing"] + mix["vss-broken"])
    assert demo_mix(["healthy-2019"]) == {"healthy-2019": 70}


def test_the_last_three_hosts_are_faulty() -> None:
    assert demo_faults(50) == "LAB-0048:refuse,LAB-0049:http401@auth,LAB-0050:hang@Receive"
    assert demo_faults(3) == ""


def test_inventory_mixes_three_transports_and_loads(tmp_path: Path) -> None:
    hosts = [FakeHost(f"LAB-{i:04d}", f"127.0.1.{i}", http_port=20000 + i) for i in range(1, 21)]
    doc = build_inventory(hosts, tmp_path / "ca.pem", "fleetcheck", "FLEETCHECK_LAB_PASSWORD")
    path = tmp_path / "demo.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    inv = load_inventory(path)
    by_transport: dict[str, list[str]] = {}
    for host in inv.hosts:
        by_transport.setdefault(host.transport, []).append(host.name)
    assert len(by_transport["psrp"]) == 15 and len(by_transport["winrm"]) == 3 and len(by_transport["ssh"]) == 2
    assert {"LAB-0018", "LAB-0019", "LAB-0020"} <= set(by_transport["psrp"])  # the faulty ones stay on psrp
    winrm = inv.host(by_transport["winrm"][0])
    assert (winrm.scheme, winrm.effective_port, winrm.ca_path) == ("https", 5986, tmp_path / "ca.pem")
    ssh = inv.host(by_transport["ssh"][0])
    assert ssh.auth == "password" and ssh.ssh_known_hosts == "accept"
    assert inv.host("LAB-0001").port == 20001 and inv.host("LAB-0001").timeout == 8
    assert all(h.password_env == "FLEETCHECK_LAB_PASSWORD" and h.password is None for h in inv.hosts)


def test_lab_falls_back_to_ports_when_addresses_are_scarce(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.lab import demo
    from fleetcheck.lab import fleet as lab_fleet

    started: list[str] = []
    stopped: list[str] = []

    class FakeFleet:
        def __init__(self, hosts: int, *, addressing: str, **_: object) -> None:
            self.addressing = addressing

        async def start(self) -> None:
            if self.addressing == "auto":
                raise OSError(98, "no free loopback address found for a lab host")
            started.append(self.addressing)

        async def stop(self) -> None:
            stopped.append(self.addressing)

    monkeypatch.setattr(lab_fleet, "LabFleet", FakeFleet)
    with demo.running_lab(5, seed=1) as fleet:
        assert fleet.addressing == "ports" and started == ["ports"]
    assert stopped == ["auto", "ports"]

    class Broken(FakeFleet):
        async def start(self) -> None:
            raise OSError(98, "busy")

    monkeypatch.setattr(lab_fleet, "LabFleet", Broken)
    with pytest.raises(demo.DemoError, match="could not start the lab fleet"), demo.running_lab(5, seed=1):
        pass


def test_demo_and_product_import_no_development_package() -> None:
    """`make demo` installs only the runtime dependencies: nothing it imports may come from `.[dev]`."""
    import re
    import subprocess
    import sys
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = {re.split(r"[<>=\[ ]", spec)[0].lower().replace("-", "_") for spec in project["optional-dependencies"]["dev"]}
    dev.discard(project["name"])  # `fleetcheck[sites]`: the project's own extras
    runtime = {re.split(r"[<>=\[ ]", spec)[0].lower().replace("-", "_") for spec in project["dependencies"]}
    code = (
        "import sys, importlib.metadata as md\n"
        "import fleetcheck.cli, fleetcheck.lab.demo, fleetcheck.lab.fleet, fleetcheck.api, fleetcheck.reports.html\n"
        "import fleetcheck.reports.sarif, fleetcheck.reports.junit, fleetcheck.reports.prometheus, fleetcheck.config\n"
        "dists = md.packages_distributions()\n"
        "print('\\n'.join(sorted({d for m in list(sys.modules) for d in dists.get(m.split('.')[0], [])})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    used = {line.strip().lower().replace("-", "_") for line in out.splitlines() if line.strip()}
    assert used & dev - runtime == set(), f"the product imports development packages: {sorted(used & dev - runtime)}"
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo: \$\(RUNTIME\)$", makefile, re.M) and "pip install -q -e .\n" in makefile
