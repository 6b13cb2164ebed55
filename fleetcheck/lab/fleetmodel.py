"""The fleet's vocabulary, shared by planning, serving and the worker processes.

Kept apart from `LabFleet` so the worker processes (spawned: they import what they unpickle)
and the pure planners depend on data, not on the orchestration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleetcheck.errors import UserError
from fleetcheck.lab.host import LabHost

DEFAULT_PASSWORD = "Lab-Passw0rd!"
PASSWORD_ENV = "FLEETCHECK_LAB_PASSWORD"
DEFAULT_USERNAME = "fleetcheck"
DEFAULT_SCENARIO = "healthy-2019"
STANDARD_PORTS = {"http": 5985, "https": 5986, "ssh": 22}
#: Hosts one process serves before the fleet spreads over workers. Measured (bench.lab_capacity,
#: 2 cores): one process holds 1,000 hosts in ~73 MB and spends ~14 ms CPU per NTLM-encrypted
#: session, half of what the pypsrp client spends; each extra worker costs ~55 MB of baseline.
HOSTS_PER_WORKER = 1000

Addressing = Literal["auto", "loopback-ips", "ports"]


class FleetConfigError(UserError, ValueError):
    """A bad --mix / --faults / fleet argument, worded for the person who typed it."""


def host_name(index: int) -> str:
    """The index-th host's name, LAB-0001 upward, sortable like a real naming scheme."""
    return f"LAB-{index + 1:04d}"


@dataclass
class FleetHost:
    """Where one simulated host listens (ports are None for endpoints not served)."""

    name: str
    scenario: str
    address: str
    http_port: int
    https_port: int | None = None
    ssh_port: int | None = None
    refused: bool = False
    worker: int = 0
    lab: LabHost | None = field(default=None, repr=False, compare=False)  # in-process fleets only

    def detached(self) -> FleetHost:
        """A copy without the live LabHost, to cross a process boundary."""
        return FleetHost(
            self.name, self.scenario, self.address, self.http_port, self.https_port,
            self.ssh_port, self.refused, self.worker,
        )


@dataclass
class HostPlan:
    """What one host will be: its name, scenario and fault specs (as dicts: picklable)."""

    name: str
    scenario: str
    faults: list[dict[str, Any]]


@dataclass
class WorkerConfig:
    """Everything one serving process needs, picklable (worker processes are spawned)."""

    index: int
    plans: list[HostPlan]
    first_address: int
    addressing: str
    https: bool
    ssh: bool
    username: str
    password: str
    authorized_keys: list[str]
    seed: int
    ca_cert_pem: bytes | None
    ca_key_pem: bytes | None
    ssh_host_key_pem: bytes | None = None

    def endpoints(self) -> list[str]:
        """The endpoint kinds every host of this worker serves, in binding order."""
        return ["http", *(["https"] if self.https else []), *(["ssh"] if self.ssh else [])]
