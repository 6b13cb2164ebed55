"""`LabFleet`: many simulated hosts on loopback, for tests, benchmarks and `fleetcheck lab serve`.

Each host gets its own loopback address (127.0.1.1 upward) with the standard ports
5985/5986/22, so the inventory looks like a real one; where extra loopback addresses or low
ports are unavailable, every host listens on 127.0.0.1 with its own ports instead
(`addressing`). Large fleets are spread over worker processes (`workers`), each serving a
`FleetSlice`; the parent aggregates readiness and counters.

    async with LabFleet(hosts=20, mix={"healthy-2019": 18, "wsb-missing": 2}, seed=1) as fleet:
        fleet.write_inventory(tmp_path / "lab.yml")
        ...
        assert fleet.counters.peak_open_shells <= 10

`workers=1` (the default up to 1,000 hosts) serves in the caller's event loop, and
`fleet.hosts[name].lab` is the live `LabHost`. More workers are spawned processes: the calling
program needs the usual `if __name__ == "__main__":` guard, `lab` is None, and
`fleet.counters` is a snapshot taken over the workers' pipes.

This module holds the orchestration only; the pieces it puts together live in
`fleetmodel` (data), `faultgrammar` (--faults), `mix` (--mix), `addressing`, `serving`,
`workers` and `inventoryfile`. Their public names are re-exported here for callers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import trustme

from fleetcheck.lab.addressing import detect_addressing, loopback_address
from fleetcheck.lab.faultgrammar import (
    FAULTS_HELP,
    WSMAN_ACTIONS,
    FaultRule,
    known_fault_kinds,
    latency_rules,
    parse_fault_rule,
    parse_faults,
)
from fleetcheck.lab.fleetmodel import (
    DEFAULT_PASSWORD,
    DEFAULT_SCENARIO,
    DEFAULT_USERNAME,
    HOSTS_PER_WORKER,
    PASSWORD_ENV,
    STANDARD_PORTS,
    Addressing,
    FleetConfigError,
    FleetHost,
    HostPlan,
    WorkerConfig,
    host_name,
)
from fleetcheck.lab.host import FleetCounters
from fleetcheck.lab.inventoryfile import InventoryRequest, write_inventory
from fleetcheck.lab.mix import (
    apportion,
    available_scenarios,
    parse_mix,
    plan_scenarios,
    resolve_scenario_names,
)
from fleetcheck.lab.serving import FleetSlice
from fleetcheck.lab.workers import WorkerPool, counters_dict, reset_counters

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_SCENARIO",
    "DEFAULT_USERNAME",
    "FAULTS_HELP",
    "HOSTS_PER_WORKER",
    "PASSWORD_ENV",
    "STANDARD_PORTS",
    "WSMAN_ACTIONS",
    "Addressing",
    "FaultRule",
    "FleetConfigError",
    "FleetHost",
    "LabFleet",
    "apportion",
    "available_scenarios",
    "host_name",
    "known_fault_kinds",
    "loopback_address",
    "parse_fault_rule",
    "parse_faults",
    "parse_mix",
    "plan_scenarios",
    "resolve_scenario_names",
]


def default_workers(hosts: int) -> int:
    """One process up to HOSTS_PER_WORKER hosts, then one per that many, at most one per core."""
    if hosts <= HOSTS_PER_WORKER:
        return 1
    return max(2, min(os.cpu_count() or 2, math.ceil(hosts / HOSTS_PER_WORKER)))


class LabFleet:
    """N simulated Windows hosts on loopback; `async with LabFleet(...) as fleet:`."""

    def __init__(
        self,
        hosts: int = 3,
        *,
        mix: dict[str, int] | str | None = None,
        seed: int = 0,
        latency_ms: float = 0.0,
        faults: Sequence[FaultRule] | str | None = None,
        https: bool = False,
        ssh: bool = False,
        addressing: Addressing = "auto",
        password: str | None = None,
        username: str = DEFAULT_USERNAME,
        authorized_keys: Sequence[str] = (),
        workers: int | None = None,
    ) -> None:
        if hosts < 1:
            raise FleetConfigError("a fleet needs at least one host")
        if addressing not in ("auto", "loopback-ips", "ports"):
            raise FleetConfigError(f"addressing must be auto, loopback-ips or ports, not {addressing!r}")
        self.size = hosts
        mix_dict = parse_mix(mix) if isinstance(mix, str) else mix
        self.mix = resolve_scenario_names(mix_dict) if mix_dict else None
        self.seed = seed
        self.rules: list[FaultRule] = parse_faults(faults) if isinstance(faults, str) else list(faults or [])
        self.rules += latency_rules(latency_ms)
        self.https = https
        self.ssh = ssh
        self.requested_addressing: Addressing = addressing
        self.addressing: Addressing = addressing
        self.password = password if password is not None else os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)
        self.username = username
        self.authorized_keys = list(authorized_keys)
        self.workers = max(1, min(workers if workers is not None else default_workers(hosts), hosts))
        self.hosts: dict[str, FleetHost] = {}
        self.ca_pem: bytes | None = None
        self._ca_key_pem: bytes | None = None
        self._ssh_key_pem: bytes | None = None
        self._slice: FleetSlice | None = None
        self._pool = WorkerPool()
        self._local_counters = FleetCounters()

    # -- planning
    def _endpoints(self) -> list[str]:
        return ["http", *(["https"] if self.https else []), *(["ssh"] if self.ssh else [])]

    def _plans(self) -> list[HostPlan]:
        """Each host's name, scenario and the fault specs of the rules that target it."""
        plans = []
        for i, scenario in enumerate(plan_scenarios(self.size, self.mix, self.seed)):
            name = host_name(i)
            specs = [
                r.spec.model_dump(exclude_defaults=True) | {"kind": r.spec.kind} for r in self.rules if r.applies_to(name)
            ]
            plans.append(HostPlan(name=name, scenario=scenario, faults=specs))
        return plans

    def _worker_configs(self, plans: list[HostPlan]) -> list[WorkerConfig]:
        """Contiguous slices of the plan, one per worker, each hunting addresses from its own start."""
        per = math.ceil(len(plans) / self.workers)
        return [
            WorkerConfig(
                index=w,
                plans=plans[w * per : (w + 1) * per],
                first_address=w * per,
                addressing=self.addressing,
                https=self.https,
                ssh=self.ssh,
                username=self.username,
                password=self.password,
                authorized_keys=self.authorized_keys,
                seed=self.seed,
                ca_cert_pem=self.ca_pem,
                ca_key_pem=self._ca_key_pem,
                ssh_host_key_pem=self._ssh_key_pem,
            )
            for w in range(self.workers)
            if plans[w * per : (w + 1) * per]
        ]

    def _make_keys(self) -> None:
        """One CA and one SSH host key for the whole fleet, so one CA file and one known_hosts
        file in the inventory verify every host, whichever worker serves it."""
        if self.https:
            ca = trustme.CA(organization_name="fleetcheck lab")
            self.ca_pem = ca.cert_pem.bytes()
            self._ca_key_pem = ca.private_key_pem.bytes()
        if self.ssh:
            from fleetcheck.lab.ssh import host_key

            self._ssh_key_pem = host_key().export_private_key()

    # -- lifecycle
    async def start(self) -> LabFleet:
        self.addressing = detect_addressing(self.requested_addressing, self._endpoints())
        self._make_keys()
        configs = self._worker_configs(self._plans())
        try:
            if self.workers == 1:
                self._slice = FleetSlice(configs[0], self._local_counters)
                await self._slice.start()
                found = self._slice.hosts
            else:
                found = await self._pool.start(configs)
        except BaseException:
            await self.stop()
            raise
        self.hosts = {h.name: h for h in found}
        return self

    async def stop(self) -> None:
        if self._slice is not None:
            await self._slice.stop()
            self._slice = None
        await self._pool.stop()

    async def __aenter__(self) -> LabFleet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def dead_workers(self) -> list[str]:
        """Worker processes that exited while the fleet runs (their hosts no longer answer)."""
        return self._pool.dead()

    @property
    def pids(self) -> list[int]:
        """Process ids serving the fleet (this process for an in-process fleet)."""
        return [p.pid for p in self._pool.procs] or [os.getpid()]

    # -- counters
    @property
    def counters(self) -> FleetCounters:
        """In-process: the live shared object. With workers: a fresh fleet-wide snapshot."""
        return self._pool.counters() if self._pool.conns else self._local_counters

    def reset_counters(self) -> None:
        """Zero requests/sessions and restart the peak from the shells open now."""
        if self._pool.conns:
            self._pool.reset()
        else:
            reset_counters(self._local_counters)

    def counters_dict(self) -> dict[str, int]:
        return counters_dict(self.counters)

    # -- inventory
    def write_inventory(
        self,
        path: Path | str,
        *,
        transport: Literal["psrp", "winrm", "ssh"] = "psrp",
        scheme: Literal["http", "https"] | None = None,
        auth: str | None = None,
    ) -> Path:
        """Write a native inventory for the fleet (password by env var; CA file next to it)."""
        req = InventoryRequest(transport, scheme or ("https" if self.https else "http"), auth, self.username)
        return write_inventory(Path(path), list(self.hosts.values()), req, ca_pem=self.ca_pem, serves_ssh=self.ssh)
