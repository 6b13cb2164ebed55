"""`LabFleet`: many simulated hosts on loopback, for tests, benchmarks and `fleetcheck lab serve`.

Each host gets its own loopback address (127.0.1.1 upward) with the standard ports
5985/5986/22, so the inventory looks like a real one; where extra loopback addresses or low
ports are unavailable, every host listens on 127.0.0.1 with its own ports instead. Large
fleets are spread over worker processes (spawned, each owning a slice of the hosts); the
parent aggregates readiness and counters, and the fleet-wide open/peak shell gauges live
in shared memory so "peak concurrent open shells" is exact across processes.

    async with LabFleet(hosts=20, mix={"healthy-2019": 18, "wsb-missing": 2}, seed=1) as fleet:
        fleet.write_inventory(tmp_path / "lab.yml")
        ...
        assert fleet.counters.peak_open_shells <= 10

`workers=1` (the default up to 1,000 hosts) serves in the caller's event loop, and
`fleet.hosts[name].lab` is the live `LabHost`. More workers are spawned processes: the calling
program needs the usual `if __name__ == "__main__":` guard, `lab` is None, and
`fleet.counters` is a snapshot taken over the workers' pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fleetcheck.lab.host import FaultSpec, FleetCounters, LabHost
from fleetcheck.lab.machine import LabUser, MachineState

DEFAULT_PASSWORD = "Lab-Passw0rd!"
PASSWORD_ENV = "FLEETCHECK_LAB_PASSWORD"
DEFAULT_USERNAME = "fleetcheck"
DEFAULT_SCENARIO = "healthy-2019"
STANDARD_PORTS = {"http": 5985, "https": 5986, "ssh": 22}
#: Hosts one process serves before the fleet spreads over workers. Measured (bench.lab_capacity,
#: 2 cores): one process holds 1,000 hosts in ~73 MB and spends ~14 ms CPU per NTLM-encrypted
#: session, half of what the pypsrp client spends; each extra worker costs ~55 MB of baseline.
HOSTS_PER_WORKER = 1000
_HUNT_LIMIT = 4096  # addresses tried for one host before giving up
_READY_TIMEOUT_S = 180.0
_QUERY_TIMEOUT_S = 10.0

Addressing = Literal["auto", "loopback-ips", "ports"]

FAULTS_HELP = """\
Faults: comma-separated RULEs, each TARGET:KIND[=VALUE][@ON][#NTH][%PROB][/PROBE]
  TARGET  host name or glob (LAB-0003, LAB-00*, *)
  KIND    latency jitter hang reset refuse http401 http500 malformed encrypt_garbage optimeout
          tls_bad_cert cbt_mismatch broken_pool slow_output oversized_output bad_json probe_throws ...
  =VALUE  seconds (latency, jitter, slow_output), bytes (oversized_output), the WSMan fault code
          (http500), or untrusted|wrong_name (tls_bad_cert)
  @ON     where it fires: a WSMan action (Create Command Send Receive Signal Delete Get), auth,
          connect or script; default * (everywhere)
  #NTH    only the NTH matching request (default: every one)
  %PROB   fire with this probability 0..1 (seeded per host)
  /PROBE  the probe id, for probe-level faults
Example: "LAB-0003:hang@Receive,LAB-0004:refuse,LAB-0005:http500=2150859173@Create#1,*:latency=0.05"
"""


class FleetConfigError(ValueError):
    """A bad --mix / --faults / fleet argument, worded for the person who typed it."""


# --- pure helpers: scenario mix, fault spec grammar, addresses ------------------------------


def parse_mix(text: str) -> dict[str, int]:
    """`healthy-2019=80,wsb-missing=5` -> {"healthy-2019": 80, "wsb-missing": 5}."""
    mix: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = item.partition("=")
        if not sep:
            weight = "1"
        try:
            value = int(weight)
        except ValueError:
            raise FleetConfigError(
                f"--mix: weight of {name!r} must be a whole number, got {weight!r}"
            ) from None
        if value < 0:
            raise FleetConfigError(f"--mix: weight of {name!r} must not be negative")
        mix[name.strip()] = mix.get(name.strip(), 0) + value
    if not mix or sum(mix.values()) == 0:
        raise FleetConfigError(
            "--mix: give at least one scenario with a positive weight, e.g. healthy-2019=9,wsb-missing=1"
        )
    return mix


def apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` hosts by weight (largest remainder, ties by name): exact and deterministic."""
    weight_sum = sum(weights.values())
    quotas = {k: total * w / weight_sum for k, w in weights.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    left = total - sum(counts.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), k))[:left]:
        counts[k] += 1
    return counts


def plan_scenarios(hosts: int, mix: dict[str, int] | None, seed: int) -> list[str]:
    """The scenario of each host, in host order; shuffled by `seed` so failures are spread."""
    if not mix:
        return [DEFAULT_SCENARIO] * hosts
    names: list[str] = []
    for name, count in sorted(apportion(hosts, mix).items()):
        names += [name] * count
    random.Random(seed).shuffle(names)
    return names


WSMAN_ACTIONS = ("Create", "Command", "Send", "Receive", "Signal", "Delete", "Get")
_ON_NAMES = {n.lower(): n for n in (*WSMAN_ACTIONS, "auth", "connect", "script", "*")}
_KIND_ALIASES = {"probe_throw": "probe_throws", "throw": "probe_throws", "tls_untrusted": "tls_bad_cert"}
_EXTRA_KINDS = ("jitter", "tls_bad_cert", "cbt_mismatch", "broken_pool", "shell_quota", "refuse")


def known_fault_kinds() -> set[str]:
    kinds = set(_EXTRA_KINDS)
    with contextlib.suppress(ImportError):
        from fleetcheck.lab import faults

        for attr in dir(faults):
            if attr.endswith("_KINDS"):
                kinds.update(getattr(faults, attr))
    return kinds


@dataclass(frozen=True)
class FaultRule:
    """`target` (host glob) gets `spec`."""

    target: str
    spec: FaultSpec

    def applies_to(self, host_name: str) -> bool:
        return fnmatch.fnmatchcase(host_name.upper(), self.target.upper())


def _split_markers(text: str) -> dict[str, str]:
    """KIND=VALUE@ON#NTH%PROB/PROBE -> parts by marker (markers may come in any order)."""
    parts: dict[str, str] = {}
    key = ""
    buf: list[str] = []
    for ch in text:
        if key != "/" and ch in "=@#%/":
            if ch in parts or (ch == key):
                raise FleetConfigError(f"marker {ch!r} given twice")
            parts[key] = "".join(buf)
            key, buf = ch, []
        else:
            buf.append(ch)
    parts[key] = "".join(buf)
    return parts


def parse_fault_rule(text: str) -> FaultRule:
    target, sep, body = text.strip().partition(":")
    if not sep or not target.strip() or not body.strip():
        raise FleetConfigError(f"fault {text!r}: expected TARGET:KIND, e.g. LAB-0003:hang@Receive")
    try:
        parts = _split_markers(body.strip())
    except FleetConfigError as exc:
        raise FleetConfigError(f"fault {text!r}: {exc}") from None
    kind_text = parts[""].strip().lower()
    kind = _KIND_ALIASES.get(kind_text, kind_text)
    known = known_fault_kinds()
    if kind not in known:
        raise FleetConfigError(
            f"fault {text!r}: unknown kind {kind_text!r}; known kinds: {', '.join(sorted(known))}"
        )
    spec: dict[str, Any] = {"kind": kind}
    raw_value = parts.get("=")
    try:
        if kind_text == "tls_untrusted":
            spec["value"] = 1.0
        if raw_value is not None:
            if kind == "tls_bad_cert":
                if raw_value not in ("untrusted", "wrong_name"):
                    raise ValueError("tls_bad_cert takes untrusted or wrong_name")
                spec["value"] = 1.0 if raw_value == "untrusted" else 0.0
            elif kind == "http500":
                spec["code"] = int(raw_value)
            else:
                spec["value"] = float(raw_value)
        if "@" in parts:
            on = _ON_NAMES.get(parts["@"].strip().lower())
            if on is None:
                raise ValueError(f"@ON must be one of {', '.join(_ON_NAMES.values())}")
            spec["on"] = on
        if "#" in parts:
            spec["nth"] = int(parts["#"])
            if spec["nth"] < 1:
                raise ValueError("#NTH counts from 1")
        if "%" in parts:
            spec["probability"] = float(parts["%"])
            if not 0.0 <= spec["probability"] <= 1.0:
                raise ValueError("%PROB must be between 0 and 1")
        if "/" in parts:
            spec["probe"] = parts["/"].strip()
    except ValueError as exc:
        raise FleetConfigError(f"fault {text!r}: {exc}") from None
    return FaultRule(target=target.strip(), spec=FaultSpec(**spec))


def parse_faults(text: str) -> list[FaultRule]:
    """The `--faults` grammar (see FAULTS_HELP)."""
    return [parse_fault_rule(item) for item in text.split(",") if item.strip()]


def loopback_address(index: int) -> str:
    """The index-th host address: 127.0.1.1, ... 127.0.1.254, 127.0.2.1, ... (no .0 or .255)."""
    block, offset = divmod(index, 254)
    block += 1
    if block > 0xFFFF:
        raise FleetConfigError("out of loopback addresses")
    return f"127.{block >> 8}.{block & 0xFF}.{offset + 1}"


def host_name(index: int) -> str:
    return f"LAB-{index + 1:04d}"


def _always_refused(spec: FaultSpec) -> bool:
    return spec.kind == "refuse" and spec.on in ("*", "connect") and not spec.nth and spec.probability is None


# --- the running fleet -------------------------------------------------------------------


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


@dataclass
class _HostPlan:
    name: str
    scenario: str
    faults: list[dict[str, Any]]


@dataclass
class _WorkerConfig:
    """Everything one worker needs, picklable (spawned processes)."""

    index: int
    plans: list[_HostPlan]
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


class _SharedGauges:
    """Fleet-wide open/peak shells in shared memory (exact across worker processes)."""

    def __init__(self, ctx: Any) -> None:
        self.array = ctx.Array("q", 2)  # [open, peak], with its own lock

    def opened(self) -> None:
        with self.array.get_lock():
            self.array[0] += 1
            self.array[1] = max(self.array[1], self.array[0])

    def closed(self) -> None:
        with self.array.get_lock():
            self.array[0] -= 1

    def read(self) -> tuple[int, int]:
        with self.array.get_lock():
            return int(self.array[0]), int(self.array[1])

    def reset_peak(self) -> None:
        with self.array.get_lock():
            self.array[1] = self.array[0]


class _SharedCounters(FleetCounters):
    """A worker's counters that also feed the fleet-wide shared gauges."""

    gauges: _SharedGauges | None = None

    def shell_opened(self) -> None:
        super().shell_opened()
        if self.gauges is not None:
            self.gauges.opened()

    def shell_closed(self) -> None:
        super().shell_closed()
        if self.gauges is not None:
            self.gauges.closed()


def _load_machine(scenario: str) -> MachineState:
    """The scenario's machine; the default scenario falls back to `MachineState()` defaults
    while the scenario library does not ship it."""
    if scenario == DEFAULT_SCENARIO and scenario not in _library():
        return MachineState()
    from fleetcheck.lab.scenarios import load_scenario

    try:
        machine: MachineState = load_scenario(scenario)
    except Exception as exc:  # the library's own error names the file and field
        raise FleetConfigError(f"scenario {scenario!r}: {exc}") from None
    return machine


def _library() -> list[str]:
    try:
        from fleetcheck.lab.scenarios import list_scenarios
    except ImportError:
        return []
    names: list[str] = list_scenarios()
    return names


def available_scenarios() -> list[str]:
    """Scenario names usable in a mix (the default one is always usable)."""
    names = _library()
    return names if DEFAULT_SCENARIO in names else [DEFAULT_SCENARIO, *names]


def resolve_scenario_names(mix: dict[str, int]) -> dict[str, int]:
    """Exact names, a unique prefix (`wsb` -> `wsb-missing`), or `healthy` for healthy-2019."""
    known = available_scenarios()
    out: dict[str, int] = {}
    for name, weight in mix.items():
        if name in known:
            resolved = name
        elif name == "healthy" and DEFAULT_SCENARIO in known:
            resolved = DEFAULT_SCENARIO
        else:
            hits = [k for k in known if k.startswith(name)]
            if len(hits) != 1:
                why = "is ambiguous" if hits else "is not a known scenario"
                raise FleetConfigError(f"--mix: {name!r} {why}; scenarios: {', '.join(known)}")
            resolved = hits[0]
        out[resolved] = out.get(resolved, 0) + weight
    return out


def _make_lab_host(
    plan: _HostPlan, cfg: _WorkerConfig, counters: FleetCounters, cache: dict[str, MachineState]
) -> LabHost:
    base = cache.get(plan.scenario)
    if base is None:
        base = cache[plan.scenario] = _load_machine(plan.scenario)
    others = [u for u in base.users if u.name.lower() != cfg.username.lower()]
    users = [
        LabUser(name=cfg.username, password=cfg.password, authorized_keys=list(cfg.authorized_keys)),
        *others,
    ]
    # Shallow copy: hosts of one scenario share the (read-only) fact sections.
    machine = base.model_copy(update={"hostname": plan.name, "users": users})
    return LabHost(
        name=plan.name,
        machine=machine,
        faults=[FaultSpec(**f) for f in plan.faults],
        counters=counters,
        rng=random.Random(f"{cfg.seed}:{plan.name}"),
    )


class _Slice:
    """One process's share of the fleet: binds, serves and stops its hosts."""

    def __init__(self, cfg: _WorkerConfig, counters: FleetCounters) -> None:
        self.cfg = cfg
        self.counters = counters
        self.hosts: list[FleetHost] = []
        self._servers: list[Any] = []
        self._ssh_servers: list[Any] = []
        self._reserved: list[socket.socket] = []
        self._cursor = cfg.first_address
        self._tls: Any = None

    # -- addresses
    def _wanted(self) -> list[str]:
        kinds = ["http"]
        if self.cfg.https:
            kinds.append("https")
        if self.cfg.ssh:
            kinds.append("ssh")
        return kinds

    def _reserve(self, keep: bool) -> str:
        """Next address whose standard ports are all free (kept bound, unlistened, when `keep`)."""
        for _ in range(_HUNT_LIMIT):
            address = loopback_address(self._cursor)
            self._cursor += 1
            socks: list[socket.socket] = []
            try:
                for kind in self._wanted():
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    if not keep:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((address, STANDARD_PORTS[kind]))
            except OSError as exc:
                for s in socks:
                    s.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            if keep:
                self._reserved += socks
            else:
                for s in socks:
                    s.close()
            return address
        raise OSError(errno.EADDRINUSE, "no free loopback address found for a lab host")

    # -- TLS
    def _tls_for(self, names: Sequence[str], spec: FaultSpec | None) -> tuple[ssl.SSLContext, bytes]:
        if self._tls is None:
            import trustme

            from fleetcheck.lab.tls import LabTLS

            assert self.cfg.ca_cert_pem is not None and self.cfg.ca_key_pem is not None
            self._tls = LabTLS(ca=trustme.CA.from_pem(self.cfg.ca_cert_pem, self.cfg.ca_key_pem))
        if spec is not None:
            kind = "untrusted" if spec.value else "wrong_name"
            ctx, der = self._tls.bad_cert_context(*names, kind=kind)
            return ctx, der
        ctx, der = self._tls.server_context(*names)
        return ctx, der

    # -- listeners
    async def _listen(
        self, lab: LabHost, address: str, ports: dict[str, int], tls: tuple[ssl.SSLContext, bytes] | None
    ) -> dict[str, int]:
        from fleetcheck.lab.hostserver import start_winrm_listener

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
            await _close_servers(started, ssh_started)
            raise
        self._servers += started
        self._ssh_servers += ssh_started
        return bound

    async def start(self) -> None:
        _raise_fd_limit(len(self.cfg.plans) * (len(self._wanted()) * 3 + 1) + 256)
        loopback = self.cfg.addressing == "loopback-ips"
        cache: dict[str, MachineState] = {}
        labs = [_make_lab_host(p, self.cfg, self.counters, cache) for p in self.cfg.plans]
        for lab in labs:
            if any(_always_refused(f) for f in lab.faults):
                address = self._reserve(keep=True) if loopback else "127.0.0.1"
                self.hosts.append(self._refused_host(lab, address))
                continue
            bad = next((f for f in lab.faults if f.kind == "tls_bad_cert"), None)
            for _attempt in range(20):
                address = self._reserve(keep=False) if loopback else "127.0.0.1"
                ports = {k: (STANDARD_PORTS[k] if loopback else 0) for k in self._wanted()}
                # Its own certificate, valid for its address and name only, as a real server's.
                tls = self._tls_for([address, lab.name.lower()], bad) if self.cfg.https else None
                try:
                    bound = await self._listen(lab, address, ports, tls)
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or not loopback:
                        raise  # else: lost a race for this address with another fleet
            else:
                raise OSError(errno.EADDRINUSE, f"could not bind {lab.name}")
            self.hosts.append(
                FleetHost(
                    name=lab.name,
                    scenario=self.cfg.plans[len(self.hosts)].scenario,
                    address=address,
                    http_port=bound["http"],
                    https_port=bound.get("https"),
                    ssh_port=bound.get("ssh"),
                    worker=self.cfg.index,
                    lab=lab,
                )
            )

    def _refused_host(self, lab: LabHost, address: str) -> FleetHost:
        """Nothing listens: in loopback mode the standard ports were reserved unlistened;
        in ports mode reserve one port per endpoint the same way (connect gets RST)."""
        ports: dict[str, int] = {k: STANDARD_PORTS[k] for k in self._wanted()}
        if self.cfg.addressing != "loopback-ips":
            for kind in self._wanted():
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((address, 0))
                self._reserved.append(s)
                ports[kind] = s.getsockname()[1]
        return FleetHost(
            name=lab.name,
            scenario=self.cfg.plans[len(self.hosts)].scenario,
            address=address,
            http_port=ports["http"],
            https_port=ports.get("https"),
            ssh_port=ports.get("ssh"),
            refused=True,
            worker=self.cfg.index,
            lab=lab,
        )

    async def stop(self) -> None:
        await _close_servers(self._servers, self._ssh_servers)
        self._servers, self._ssh_servers = [], []
        for s in self._reserved:
            s.close()
        self._reserved = []


def _raise_fd_limit(needed: int) -> None:
    """Each host holds a listener per endpoint plus its connections: lift the soft fd limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _close_servers(servers: list[Any], ssh_servers: list[Any]) -> None:
    stop_listener: Callable[[Any], Any] | None = None
    with contextlib.suppress(ImportError):
        from fleetcheck.lab import hostserver

        stop_listener = getattr(hostserver, "stop_listener", None)
    for server in servers:
        if stop_listener is not None:
            with contextlib.suppress(Exception):
                await stop_listener(server)
        else:
            server.close()
    if ssh_servers:
        from fleetcheck.lab.ssh import stop_ssh_listener

        for acceptor in ssh_servers:
            await stop_ssh_listener(acceptor)
    if stop_listener is None:
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)


def _counters_dict(c: FleetCounters) -> dict[str, int]:
    return {
        "open_shells": c.open_shells,
        "peak_open_shells": c.peak_open_shells,
        "requests": c.requests,
        "sessions": c.sessions,
    }


def _reset(c: FleetCounters) -> None:
    c.requests = 0
    c.sessions = 0
    c.peak_open_shells = c.open_shells


# --- worker process ----------------------------------------------------------------------


def _worker_main(
    conn: multiprocessing.connection.Connection, cfg: _WorkerConfig, gauges: _SharedGauges
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker_async(conn, cfg, gauges))


async def _worker_async(
    conn: multiprocessing.connection.Connection, cfg: _WorkerConfig, gauges: _SharedGauges
) -> None:
    counters = _SharedCounters()
    counters.gauges = gauges
    if cfg.ssh_host_key_pem is not None:
        from fleetcheck.lab.ssh import use_host_key

        use_host_key(cfg.ssh_host_key_pem)
    part = _Slice(cfg, counters)
    try:
        await part.start()
    except Exception as exc:
        await part.stop()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", [_plain(h) for h in part.hosts]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent gone: stop too
            loop.remove_reader(conn.fileno())
            stop.set()
            return
        if msg == "counters":
            conn.send(_counters_dict(counters))
        elif msg == "reset":
            _reset(counters)
            conn.send("ok")
        elif msg == "stop":
            loop.remove_reader(conn.fileno())
            stop.set()

    loop.add_reader(conn.fileno(), on_message)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await part.stop()
    with contextlib.suppress(OSError):
        conn.send("stopped")


def _plain(h: FleetHost) -> FleetHost:
    data = asdict(h)
    data["lab"] = None
    return FleetHost(**data)


# --- the public context manager ------------------------------------------------------------


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
        # Per WSMan request and per SSH command (not the script). Appended: the first matching
        # spec fires, so a host's own latency rule from `faults` takes precedence.
        if latency_ms:
            self.rules += [
                FaultRule("*", FaultSpec(kind="latency", on=action, value=latency_ms / 1000.0))
                for action in WSMAN_ACTIONS
            ]
        self.https = https
        self.ssh = ssh
        self.requested_addressing: Addressing = addressing
        self.addressing: Addressing = addressing
        self.password = password if password is not None else os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)
        self.username = username
        self.authorized_keys = list(authorized_keys)
        if workers is None:
            workers = (
                1
                if hosts <= HOSTS_PER_WORKER
                else max(2, min(os.cpu_count() or 2, math.ceil(hosts / HOSTS_PER_WORKER)))
            )
        self.workers = max(1, min(workers, hosts))
        self.hosts: dict[str, FleetHost] = {}
        self.ca_pem: bytes | None = None
        self._ca_key_pem: bytes | None = None
        self._ssh_key_pem: bytes | None = None
        self._slice: _Slice | None = None
        self._procs: list[Any] = []
        self._conns: list[multiprocessing.connection.Connection] = []
        self._gauges: _SharedGauges | None = None
        self._local_counters = FleetCounters()

    # -- planning
    def _plans(self) -> list[_HostPlan]:
        scenarios = plan_scenarios(self.size, self.mix, self.seed)
        plans = []
        for i, scenario in enumerate(scenarios):
            name = host_name(i)
            specs = [
                r.spec.model_dump(exclude_defaults=True) | {"kind": r.spec.kind}
                for r in self.rules
                if r.applies_to(name)
            ]
            plans.append(_HostPlan(name=name, scenario=scenario, faults=specs))
        return plans

    def _detect_addressing(self) -> Addressing:
        """loopback-ips when extra loopback addresses work and the standard ports can be bound
        there (not privileged for us, not held by a wildcard listener such as a real sshd)."""
        if self.requested_addressing != "auto":
            return self.requested_addressing
        kinds = ["http", *(["https"] if self.https else []), *(["ssh"] if self.ssh else [])]
        probes: list[socket.socket] = []
        try:
            for kind in kinds:
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                probes.append(probe)
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.2", STANDARD_PORTS[kind]))  # below the fleets' 127.0.1.x range
            other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(other)
            other.bind((loopback_address(0), 0))
        except OSError:
            return "ports"
        finally:
            for probe in probes:
                probe.close()
        return "loopback-ips"

    def _worker_configs(self, plans: list[_HostPlan]) -> list[_WorkerConfig]:
        per = math.ceil(len(plans) / self.workers)
        configs = []
        for w in range(self.workers):
            chunk = plans[w * per : (w + 1) * per]
            if not chunk:
                continue
            configs.append(
                _WorkerConfig(
                    index=w,
                    plans=chunk,
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
            )
        return configs

    # -- lifecycle
    async def start(self) -> LabFleet:
        self.addressing = self._detect_addressing()
        if self.https:
            import trustme

            ca = trustme.CA(organization_name="fleetcheck lab")
            self.ca_pem = ca.cert_pem.bytes()
            self._ca_key_pem = ca.private_key_pem.bytes()
        if self.ssh:
            from fleetcheck.lab.ssh import host_key

            self._ssh_key_pem = host_key().export_private_key()
        configs = self._worker_configs(self._plans())
        try:
            if self.workers == 1:
                self._slice = _Slice(configs[0], self._local_counters)
                await self._slice.start()
                found = self._slice.hosts
            else:
                found = await self._start_workers(configs)
        except BaseException:
            await self.stop()
            raise
        self.hosts = {h.name: h for h in found}
        return self

    async def _start_workers(self, configs: list[_WorkerConfig]) -> list[FleetHost]:
        ctx = multiprocessing.get_context("spawn")
        self._gauges = _SharedGauges(ctx)
        for cfg in configs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(child, cfg, self._gauges),
                name=f"lab-worker-{cfg.index}",
                daemon=True,
            )
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        found: list[FleetHost] = []
        for conn, proc in zip(self._conns, self._procs, strict=True):
            msg = await asyncio.to_thread(_recv, conn, _READY_TIMEOUT_S, proc)
            if msg[0] != "ready":
                raise RuntimeError(f"lab worker {proc.name} failed to start: {msg[1]}")
            found += msg[1]
        return found

    async def stop(self) -> None:
        if self._slice is not None:
            await self._slice.stop()
            self._slice = None
        for conn in self._conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send("stop")
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    async def __aenter__(self) -> LabFleet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def dead_workers(self) -> list[str]:
        """Worker processes that exited while the fleet runs (their hosts no longer answer)."""
        return [f"{p.name} (exit code {p.exitcode})" for p in self._procs if not p.is_alive()]

    @property
    def pids(self) -> list[int]:
        """Process ids serving the fleet (this process for an in-process fleet)."""
        return [p.pid for p in self._procs] or [os.getpid()]

    # -- counters
    @property
    def counters(self) -> FleetCounters:
        """In-process: the live shared object. With workers: a fresh fleet-wide snapshot."""
        if not self._conns:
            return self._local_counters
        totals = FleetCounters()
        for conn, proc in zip(self._conns, self._procs, strict=True):
            conn.send("counters")
            data = _recv(conn, _QUERY_TIMEOUT_S, proc)
            totals.requests += data["requests"]
            totals.sessions += data["sessions"]
        assert self._gauges is not None
        totals.open_shells, totals.peak_open_shells = self._gauges.read()
        return totals

    def reset_counters(self) -> None:
        """Zero requests/sessions and restart the peak from the shells open now."""
        if not self._conns:
            _reset(self._local_counters)
            return
        for conn, proc in zip(self._conns, self._procs, strict=True):
            conn.send("reset")
            _recv(conn, _QUERY_TIMEOUT_S, proc)
        assert self._gauges is not None
        self._gauges.reset_peak()

    def counters_dict(self) -> dict[str, int]:
        return _counters_dict(self.counters)

    # -- inventory
    def _write_known_hosts(self, path: Path) -> Path:
        """The lab's SSH host key for every host, so clients can keep host-key checking on."""
        from fleetcheck.lab.ssh import known_hosts_line

        lines = [
            known_hosts_line(h.address, h.ssh_port, (h.name.lower(),) if h.ssh_port == 22 else ())
            for h in self.hosts.values()
            if h.ssh_port is not None
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def write_inventory(
        self,
        path: Path | str,
        *,
        transport: Literal["psrp", "winrm", "ssh"] = "psrp",
        scheme: Literal["http", "https"] | None = None,
        auth: str | None = None,
    ) -> Path:
        """Write a native inventory for the fleet (password by env var; CA file next to it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        scheme = scheme or ("https" if self.https else "http")
        if scheme == "https" and not self.https:
            raise FleetConfigError("this fleet serves no HTTPS (start it with https=True / --https)")
        if transport == "ssh" and not self.ssh:
            raise FleetConfigError("this fleet serves no SSH (start it with ssh=True / --ssh)")
        top: dict[str, Any] = {"transport": transport}
        if transport == "ssh":
            top["auth"] = auth or "password"
            default_port = STANDARD_PORTS["ssh"]
        else:
            top["scheme"] = scheme
            top["auth"] = auth or "negotiate"
            default_port = STANDARD_PORTS[scheme]
        top["username"] = self.username
        top["password_env"] = PASSWORD_ENV
        if transport == "ssh":
            top["ssh_known_hosts"] = str(
                self._write_known_hosts(path.with_name(path.stem + "-known_hosts")).resolve()
            )
        if scheme == "https" and transport != "ssh":
            assert self.ca_pem is not None
            ca_path = path.with_name(path.stem + "-ca.pem")
            ca_path.write_bytes(self.ca_pem)
            top["cert_validation"] = True
            top["ca_path"] = str(ca_path.resolve())
        hosts: dict[str, dict[str, Any]] = {}
        for h in self.hosts.values():
            port = h.ssh_port if transport == "ssh" else (h.https_port if scheme == "https" else h.http_port)
            entry: dict[str, Any] = {"address": h.address}
            if port != default_port:
                entry["port"] = port
            hosts[h.name] = entry
        header = (
            "# Simulated Windows fleet written by `fleetcheck lab serve` (not real servers).\n"
            f"# {len(hosts)} hosts; the password is read from ${PASSWORD_ENV}.\n"
        )
        body = yaml.safe_dump({"vars": top}, sort_keys=False, default_flow_style=False)
        body += "hosts:\n" + "".join(
            f"  {name}: {yaml.safe_dump(entry, default_flow_style=True, width=200).strip()}\n"
            for name, entry in hosts.items()
        )
        path.write_text(header + body, encoding="utf-8")
        return path


def _recv(conn: multiprocessing.connection.Connection, timeout: float, proc: Any) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"lab worker {proc.name} did not answer within {timeout:.0f} s")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"lab worker {proc.name} exited (code {proc.exitcode})") from None
