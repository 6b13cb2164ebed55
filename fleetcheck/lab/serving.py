"""One process's share of a fleet: build its LabHosts, bind their listeners, stop them.

The same `FleetSlice` serves an in-process fleet (workers=1, the caller's event loop) and each
spawned worker, so both paths bind, fault and stop hosts identically.
"""

from __future__ import annotations

import contextlib
import errno
import random
import ssl
from collections.abc import Sequence
from typing import Any

import trustme

from fleetcheck.lab.addressing import AddressHunter
from fleetcheck.lab.faultgrammar import always_refused
from fleetcheck.lab.fleetmodel import STANDARD_PORTS, FleetHost, HostPlan, WorkerConfig
from fleetcheck.lab.host import FaultSpec, FleetCounters, LabHost
from fleetcheck.lab.hostserver import start_winrm_listener, stop_listener
from fleetcheck.lab.machine import LabUser, MachineState
from fleetcheck.lab.mix import load_machine
from fleetcheck.lab.tls import LabTLS

#: Binding attempts for one host in loopback-ips mode (a parallel fleet may take the address).
BIND_ATTEMPTS = 20


def make_lab_host(plan: HostPlan, cfg: WorkerConfig, counters: FleetCounters, cache: dict[str, MachineState]) -> LabHost:
    """The simulated machine for `plan`, with the lab's user first in its user list."""
    base = cache.get(plan.scenario)
    if base is None:
        base = cache[plan.scenario] = load_machine(plan.scenario)
    others = [u for u in base.users if u.name.lower() != cfg.username.lower()]
    users = [LabUser(name=cfg.username, password=cfg.password, authorized_keys=list(cfg.authorized_keys)), *others]
    # Shallow copy: hosts of one scenario share the (read-only) fact sections.
    machine = base.model_copy(update={"hostname": plan.name, "users": users})
    return LabHost(
        name=plan.name,
        machine=machine,
        faults=[FaultSpec(**f) for f in plan.faults],
        counters=counters,
        rng=random.Random(f"{cfg.seed}:{plan.name}"),
    )


def raise_fd_limit(needed: int) -> None:
    """Each host holds a listener per endpoint plus its connections: lift the soft fd limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def close_servers(servers: list[Any], ssh_servers: list[Any]) -> None:
    """Stop WinRM listeners (and their connections), then SSH acceptors."""
    for server in servers:
        with contextlib.suppress(Exception):
            await stop_listener(server)
    if ssh_servers:
        from fleetcheck.lab.ssh import stop_ssh_listener

        for acceptor in ssh_servers:
            await stop_ssh_listener(acceptor)


class FleetSlice:
    """Binds, serves and stops the hosts of one `WorkerConfig`."""

    def __init__(self, cfg: WorkerConfig, counters: FleetCounters) -> None:
        self.cfg = cfg
        self.counters = counters
        self.hosts: list[FleetHost] = []
        self._servers: list[Any] = []
        self._ssh_servers: list[Any] = []
        self._addresses = AddressHunter(cfg.first_address, cfg.endpoints())
        self._tls: LabTLS | None = None

    @property
    def _loopback(self) -> bool:
        return self.cfg.addressing == "loopback-ips"

    def _tls_for(self, names: Sequence[str], spec: FaultSpec | None) -> tuple[ssl.SSLContext, bytes]:
        """Each host its own certificate from the fleet's CA, valid for its address and name only,
        as a real server's; a `tls_bad_cert` host gets an untrusted or wrong-name one."""
        if self._tls is None:
            assert self.cfg.ca_cert_pem is not None and self.cfg.ca_key_pem is not None
            self._tls = LabTLS(ca=trustme.CA.from_pem(self.cfg.ca_cert_pem, self.cfg.ca_key_pem))
        if spec is not None:
            return self._tls.bad_cert_context(*names, kind="untrusted" if spec.value else "wrong_name")
        return self._tls.server_context(*names)

    async def _listen(
        self, lab: LabHost, address: str, ports: dict[str, int], tls: tuple[ssl.SSLContext, bytes] | None
    ) -> dict[str, int]:
        bound: dict[str, int] = {}
        started: list[Any] = []
        ssh_started: list[Any] = []
        try:
            server = await start_winrm_listener(lab, address, ports["http"])
            started.append(server)
            bound["http"] = server.sockets[0].getsockname()[1]
            if self.cfg.https:
                assert tls is not None
                server = await start_winrm_listener(lab, address, ports["https"], tls=tls[0], cert_der=tls[1])
                started.append(server)
                bound["https"] = server.sockets[0].getsockname()[1]
            if self.cfg.ssh:
                from fleetcheck.lab.ssh import start_ssh_listener

                acceptor = await start_ssh_listener(lab, address, ports["ssh"])
                ssh_started.append(acceptor)
                bound["ssh"] = acceptor.get_port()
        except BaseException:
            await close_servers(started, ssh_started)
            raise
        self._servers += started
        self._ssh_servers += ssh_started
        return bound

    async def _bind(self, lab: LabHost) -> tuple[str, dict[str, int]]:
        """An address and the bound ports for `lab`; retries when another fleet wins the address."""
        bad = next((f for f in lab.faults if f.kind == "tls_bad_cert"), None)
        for _attempt in range(BIND_ATTEMPTS):
            address = self._addresses.next(keep=False) if self._loopback else "127.0.0.1"
            ports = {k: (STANDARD_PORTS[k] if self._loopback else 0) for k in self.cfg.endpoints()}
            tls = self._tls_for([address, lab.name.lower()], bad) if self.cfg.https else None
            try:
                return address, await self._listen(lab, address, ports, tls)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not self._loopback:
                    raise
        raise OSError(errno.EADDRINUSE, f"could not bind {lab.name}")

    def _refused(self, lab: LabHost) -> tuple[str, dict[str, int]]:
        """Nothing listens: in loopback mode the standard ports are reserved unlistened;
        in ports mode one port per endpoint is reserved the same way (connect gets RST)."""
        if self._loopback:
            return self._addresses.next(keep=True), {k: STANDARD_PORTS[k] for k in self.cfg.endpoints()}
        return "127.0.0.1", self._addresses.refused_ports("127.0.0.1")

    async def start(self) -> None:
        raise_fd_limit(len(self.cfg.plans) * (len(self.cfg.endpoints()) * 3 + 1) + 256)
        cache: dict[str, MachineState] = {}
        for plan in self.cfg.plans:
            lab = make_lab_host(plan, self.cfg, self.counters, cache)
            refused = any(always_refused(f) for f in lab.faults)
            address, ports = self._refused(lab) if refused else await self._bind(lab)
            self.hosts.append(
                FleetHost(
                    name=lab.name,
                    scenario=plan.scenario,
                    address=address,
                    http_port=ports["http"],
                    https_port=ports.get("https"),
                    ssh_port=ports.get("ssh"),
                    refused=refused,
                    worker=self.cfg.index,
                    lab=lab,
                )
            )

    async def stop(self) -> None:
        await close_servers(self._servers, self._ssh_servers)
        self._servers, self._ssh_servers = [], []
        self._addresses.release()
