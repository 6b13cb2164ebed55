"""A running simulated host: its machine state, its faults and its counters.

Shared by every endpoint (WinRM HTTP/HTTPS, SSH) of one host, and read by tests and
benchmarks through `LabFleet` to prove concurrency and count requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from fleetcheck.lab.machine import MachineState


class FaultSpec(BaseModel):
    """One injected fault. `on` is a WSMan action name (Create, Command, Send, Receive,
    Signal, Delete, Get), `auth`, `connect`, `script` (engine level) or `*`; `nth` = 0 means
    every matching request, N the Nth one only; `probability` applies when given (seeded)."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    on: str = "*"
    nth: int = 0
    probability: float | None = None
    value: float | None = None  # latency seconds, jitter, size, ...
    code: int | None = None  # WSMan fault code for http500
    probe: str | None = None  # probe id for probe-level faults


@dataclass
class FleetCounters:
    """Fleet-wide gauges, shared by all hosts of one process."""

    open_shells: int = 0
    peak_open_shells: int = 0
    requests: int = 0
    sessions: int = 0

    def shell_opened(self) -> None:
        self.open_shells += 1
        self.sessions += 1
        self.peak_open_shells = max(self.peak_open_shells, self.open_shells)

    def shell_closed(self) -> None:
        self.open_shells -= 1


@dataclass
class LabHost:
    """Runtime state of one simulated host."""

    name: str
    machine: MachineState
    faults: list[FaultSpec] = field(default_factory=list)
    counters: FleetCounters = field(default_factory=FleetCounters)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    requests_by_action: dict[str, int] = field(default_factory=dict)
    #: Every script + parameters the engine received (tests assert hostile values arrive as data).
    received_scripts: list[dict[str, Any]] = field(default_factory=list)
    #: How many requests each fault (by index in `faults`) has matched so far (for `nth`).
    fault_hits: dict[int, int] = field(default_factory=dict)
    #: Open WinRM shells by ShellId (owned by the protocol layer; shared by the host's listeners).
    shells: dict[str, Any] = field(default_factory=dict)
    #: Keytab with the host's HTTP/ and WSMAN/ keys when it is joined to a lab realm (Kerberos).
    kerberos_keytab: str | None = None
    #: Successful logons by mechanism (kerberos, ntlm, basic, certificate, credssp).
    logons: dict[str, int] = field(default_factory=dict)
    #: CredSSP logons that delivered the user's credential to this host (counted, never kept).
    delegations: int = 0
