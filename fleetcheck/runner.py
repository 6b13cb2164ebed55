"""The fleet runner: every host concurrently (at most `forks`), one round trip each.

Flow per run: merge the playbooks' probe requests into ONE static bundle; for each host
(semaphore of `forks`, a thread pool of the same size for the synchronous clients) run the
bundle over the host's transport within the host's deadline, retrying only transient
failures with exponential backoff while the deadline allows; parse the facts, judge them,
journal the HostResult (flushed at once, fsynced within `journal.FSYNC_INTERVAL`: see
fleetcheck/journal.py) and emit progress events.

Host status from the checks and the exit code follow the result policy in results.py
(`host_status`, `exit_code`).

Deadline: one budget per host covering every attempt (connect, auth, run, close, retries,
backoff), so a hung host costs at most its deadline. The timeout is `RunOptions.timeout`
when set, else the host's own `timeout` from the inventory.

Cancellation (Ctrl-C / SIGTERM -> task cancel, or `RunOptions.stop` set): pending hosts are
not started, running ones get a few seconds to close their remote shells, and `run_fleet`
RETURNS the partial result with `interrupted=True` (finished hosts are already journalled).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fleetcheck import __version__
from fleetcheck.journal import Journal
from fleetcheck.results import CheckResult, HostResult, HostStatus, RunResult, host_status
from fleetcheck.results import exit_code as exit_code
from fleetcheck.transports.base import ScriptOutput, Transport, secret_value
from fleetcheck.transports.errors import Failure, FailureContext, classify, redact

log = logging.getLogger(__name__)

#: Extra seconds past a host's deadline before the runner stops waiting for its transport.
DEADLINE_GRACE = 1.0
#: Don't start a retry with less time than this left.
MIN_ATTEMPT_S = 0.5

EventKind = Literal["run_started", "host_started", "host_retry", "host_finished", "run_finished"]


@dataclass
class RunEvent:
    """Progress for the CLI: counts so far plus the host concerned (if any)."""

    kind: EventKind
    total: int
    done: int
    failed: int  # hosts finished with any status but compliant
    host: str | None = None
    result: HostResult | None = None
    message: str = ""


@dataclass
class RunOptions:
    """How to run. `timeout=None` uses each host's own inventory timeout."""

    forks: int = 50
    timeout: float | None = 120.0
    retries: int = 2
    backoff: float = 1.0
    journal: Path | None = None
    save_facts: Path | None = None
    on_event: Callable[[RunEvent], None] | None = None
    inventory: str = ""
    #: SSH host key policy: "default" (~/.ssh/known_hosts), "accept" (no check) or a file path.
    ssh_known_hosts: str | None = "default"
    #: Set it (e.g. from a SIGTERM handler) to stop like Ctrl-C.
    stop: asyncio.Event | None = None
    #: Replace transports by name (tests, plugins); missing names get the built-in ones.
    transports: Mapping[str, Transport] | None = None
    #: Overrides every host's `psrp_client` (pypsrp | native) when set (`--psrp-client`).
    psrp_client: str | None = None


@dataclass
class Plan:
    """What every host runs: one static script, one JSON argument."""

    script: str
    args_json: str
    playbook_names: list[str] = field(default_factory=list)
    check_ids: list[str] = field(default_factory=list)


def build_plan(playbooks: Sequence[Any]) -> Plan:
    """Merge the playbooks' probe requests into one bundle."""
    from fleetcheck.playbook import merge_probe_requests
    from fleetcheck.probes.bundle import build_bundle

    bundle = build_bundle(merge_probe_requests(list(playbooks)))
    names = [str(getattr(pb, "name", pb)) for pb in playbooks]
    return Plan(script=bundle.script, args_json=bundle.args_json, playbook_names=names, check_ids=_check_ids(playbooks))


def _check_ids(playbooks: Sequence[Any]) -> list[str]:
    """Enabled built-in then custom check ids, in playbook order, without duplicates."""
    ids: list[str] = []
    for pb in playbooks:
        builtin = pb.enabled_checks() if hasattr(pb, "enabled_checks") else []
        custom = pb.enabled_custom_checks() if hasattr(pb, "enabled_custom_checks") else []
        for check in [*builtin, *custom]:
            cid = getattr(check, "id", None)
            if isinstance(cid, str) and cid not in ids:
                ids.append(cid)
    return ids


# --- pure judgement ---------------------------------------------------------------------

#: The host-status rule lives in results.py with the rest of the result policy.
status_from_checks = host_status


def judge_output(
    host: Any, output: ScriptOutput, playbooks: Sequence[Any], scan_time: datetime
) -> tuple[HostStatus, str, list[CheckResult], Any, str | None]:
    """Script output -> (status, message, checks, facts or None, error_type)."""
    from fleetcheck.checks import EvalContext, evaluate, unsupported_reason
    from fleetcheck.probes.bundle import parse_facts

    secrets = _secrets(host)
    if not output.stdout.strip():
        first = output.errors[0] if output.errors else f"exit code {output.exit_code}"
        msg = f"the probe script failed on the host: {redact(first, secrets)[:300]}"
        return HostStatus.PROTOCOL_ERROR, msg, [], None, "script_failed"
    try:
        facts = parse_facts(output.stdout)
    except Exception as exc:
        detail = redact(" ".join(str(exc).split()), secrets)[:300]
        return HostStatus.PROTOCOL_ERROR, f"unreadable facts from the host: {detail}", [], None, "bad_facts"
    reason = facts.unsupported or unsupported_reason(facts)
    if reason:
        return HostStatus.UNSUPPORTED, f"unsupported: {reason}", [], facts, "unsupported"
    checks = evaluate(facts, list(playbooks), EvalContext(scan_time=scan_time))
    status, message = host_status(checks)
    return status, message, checks, facts, None


def _secrets(host: Any) -> tuple[str, ...]:
    pw = secret_value(host)
    return (pw,) if pw else ()


def failure_context(host: Any, timeout: float) -> FailureContext:
    return FailureContext(
        transport=host.transport,
        address=host.address,
        port=host.effective_port,
        auth=host.auth,
        timeout=timeout,
        secrets=_secrets(host),
    )


# --- the orchestrator -------------------------------------------------------------------


@dataclass
class _Collected:
    """What the network part of one host produced: output or the classified failure."""

    started_at: datetime
    t0: float
    attempts: int = 0
    output: ScriptOutput | None = None
    failure: Failure | None = None


class _LazyTransports(Mapping[str, Transport]):
    """A read-only mapping that builds each transport on first lookup (imports cost ~0.1 s each)."""

    def __init__(
        self, factories: dict[str, Any], cache: dict[str, Transport], given: dict[str, Transport]
    ) -> None:
        self._factories = factories
        self._built = cache
        self._built.update(given)

    def __getitem__(self, name: str) -> Transport:
        if name not in self._built:
            if name not in self._factories:
                raise KeyError(name)
            self._built[name] = self._factories[name]()
        return self._built[name]

    def __iter__(self) -> Any:
        return iter(dict.fromkeys([*self._factories, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._factories, *self._built]))


class _Fleet:
    """State of one run (counts, journal, transports)."""

    def __init__(self, hosts: Sequence[Any], playbooks: Sequence[Any], plan: Plan, options: RunOptions) -> None:
        self.hosts = list(hosts)
        self.playbooks = list(playbooks)
        self.plan = plan
        self.options = options
        self.forks = max(1, int(options.forks))
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=self.forks, thread_name_prefix="fleetcheck")
        self.transports = self._transports()
        self.sem = asyncio.Semaphore(self.forks)
        self.done = 0
        self.failed = 0
        self.run = RunResult(
            run_id=uuid.uuid4().hex[:12],
            started_at=datetime.now(UTC),
            inventory=options.inventory,
            playbooks=plan.playbook_names,
            check_ids=list(plan.check_ids),
            fleetcheck_version=__version__,
        )
        self.journal = Journal(options.journal) if options.journal else None
        self._sync_timer: asyncio.TimerHandle | None = None

    def _transports(self) -> _LazyTransports:
        """Transports by name, each built (and its library imported) only when a host needs it."""
        options = self.options
        cache: dict[str, Transport] = {}

        def psrp() -> Transport:
            if "psrp" not in cache:
                from fleetcheck.transports.psrp import PsrpTransport

                cache["psrp"] = PsrpTransport(self.executor)
            return cache["psrp"]

        def psrp_native() -> Transport:
            from fleetcheck.transports.psrp_native import NativePsrpTransport

            return NativePsrpTransport(fallback=psrp)  # pypsrp only for auth methods native does not speak

        def winrm() -> Transport:
            from fleetcheck.transports.winrm import WinrmTransport

            return WinrmTransport(self.executor)

        def ssh() -> Transport:
            from fleetcheck.transports.ssh import SshTransport

            return SshTransport(known_hosts=options.ssh_known_hosts)

        factories = {"psrp": psrp, "psrp:native": psrp_native, "winrm": winrm, "ssh": ssh}
        return _LazyTransports(factories, cache, dict(options.transports or {}))

    def transport_name(self, host: Any) -> str:
        """`psrp` hosts may ask for the native client (inventory `psrp_client`, or the run's override)."""
        if host.transport != "psrp":
            return str(host.transport)
        client = self.options.psrp_client or getattr(host, "psrp_client", "pypsrp")
        return "psrp:native" if client == "native" else "psrp"

    def emit(self, kind: EventKind, host: str | None = None, result: HostResult | None = None, message: str = "") -> None:
        cb = self.options.on_event
        if cb is None:
            return
        try:
            cb(RunEvent(kind, len(self.hosts), self.done, self.failed, host, result, message))
        except Exception:  # a progress bar must never break the run
            log.exception("progress callback failed")

    def record(self, result: HostResult) -> None:
        self.run.hosts.append(result)
        self.done += 1
        if result.status is not HostStatus.COMPLIANT:
            self.failed += 1
        for c in result.checks:
            if c.check_id not in self.run.check_ids:
                self.run.check_ids.append(c.check_id)
        if self.journal:
            self.journal.write_host(self.run.run_id, result)
            self._schedule_sync()
        self.emit("host_finished", result.host, result)

    def _schedule_sync(self) -> None:
        """Bound how long a journalled host waits for its fsync, even when no host follows."""
        journal = self.journal
        if journal is None or not journal.dirty or self._sync_timer is not None:
            return
        self._sync_timer = asyncio.get_running_loop().call_later(journal.fsync_interval, self._sync_journal)

    def _sync_journal(self) -> None:
        self._sync_timer = None
        if self.journal is None:
            return
        try:
            self.journal.sync()
        except (OSError, ValueError) as exc:  # the next write or the close reports a lasting failure
            log.warning("journal fsync failed: %s", exc)

    async def host_task(self, host: Any) -> None:
        # The slot covers the network part only; judging happens after the shell is closed.
        async with self.sem:
            if self.options.stop is not None and self.options.stop.is_set():
                return
            self.emit("host_started", host.name)
            collected = await self.collect(host)
        self.record(self.finish(host, collected))

    async def collect(self, host: Any) -> _Collected:
        """Run the bundle with retries for transient failures, all within the host's deadline."""
        timeout = float(self.options.timeout if self.options.timeout is not None else host.timeout)
        loop = asyncio.get_running_loop()
        got = _Collected(started_at=datetime.now(UTC), t0=loop.time())
        deadline = got.t0 + timeout
        transport = self.transports.get(self.transport_name(host))
        if transport is None:
            got.failure = Failure(HostStatus.PROTOCOL_ERROR, f"unknown transport {host.transport!r}", "config")
            return got
        while True:
            got.attempts += 1
            left = deadline - loop.time()
            try:
                got.output = await asyncio.wait_for(
                    transport.run(host, self.plan.script, self.plan.args_json, timeout=left),
                    left + DEADLINE_GRACE,
                )
                return got
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc, failure_context(host, timeout))
                delay = self.options.backoff * (2 ** (got.attempts - 1)) * (0.8 + 0.4 * random.random())
                if (
                    failure.transient
                    and got.attempts <= self.options.retries
                    and deadline - loop.time() - delay >= MIN_ATTEMPT_S
                ):
                    self.emit("host_retry", host.name, message=failure.message)
                    await asyncio.sleep(delay)
                    continue
                got.failure = failure
                return got

    def finish(self, host: Any, got: _Collected) -> HostResult:
        """Judge what was collected (pure, local) into the host's result row."""
        base: dict[str, Any] = {
            "host": host.name,
            "address": host.address,
            "transport": host.transport,
            "groups": list(host.groups),
            "started_at": got.started_at,
            "attempts": got.attempts,
        }
        checks: list[CheckResult] = []
        error_type: str | None
        if got.failure is not None or got.output is None:
            failure = got.failure or Failure(HostStatus.PROTOCOL_ERROR, "no output", "internal")
            status, message, error_type = failure.status, failure.message, failure.error_type
        else:
            scan_time = datetime.now(UTC)
            status, message, checks, facts, error_type = judge_output(
                host, got.output, self.playbooks, scan_time
            )
            if facts is not None and self.options.save_facts is not None:
                facts = facts.model_copy(update={"scanned_at": scan_time.isoformat()})
                save_facts(self.options.save_facts, host.name, facts)
        duration = round(asyncio.get_running_loop().time() - got.t0, 3)
        return HostResult(
            **base, status=status, message=message, error_type=error_type, checks=checks, duration_s=duration
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self.journal:
            self.journal.close()  # fsyncs what is pending


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_facts(directory: Path, host_name: str, facts: Any) -> Path:
    """Write one host's facts document (exactly what the host printed, re-serialized) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    name = _SAFE_NAME.sub("_", host_name).strip("._") or "host"
    path = directory / f"{name}.json"
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(facts.model_dump_json(by_alias=True, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


async def run_fleet(
    hosts: Sequence[Any], playbooks: Sequence[Any], options: RunOptions | None = None, *, plan: Plan | None = None
) -> RunResult:
    """Run the playbooks on every host; always returns a RunResult (partial when interrupted)."""
    options = options or RunOptions()
    fleet = _Fleet(hosts, playbooks, plan or build_plan(playbooks), options)
    if fleet.journal:
        fleet.journal.write_start(fleet.run)
    fleet.emit("run_started")
    tasks = [asyncio.create_task(fleet.host_task(h), name=f"host:{h.name}") for h in fleet.hosts]
    stopper = asyncio.create_task(options.stop.wait()) if options.stop is not None else None
    try:
        pending: set[asyncio.Future[Any]] = set(tasks)
        while pending:
            waiters = pending | ({stopper} if stopper is not None else set())
            finished, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            pending -= finished
            if stopper is not None and stopper in finished:
                raise asyncio.CancelledError("stop requested")
            for t in finished:
                exc = t.exception()
                if exc is not None:  # a bug in our code, not a host failure
                    raise exc
    except asyncio.CancelledError:
        fleet.run.interrupted = True
        await _cancel_all(tasks)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except BaseException:
        await _cancel_all(tasks)
        raise
    finally:
        if stopper is not None:
            stopper.cancel()
        fleet.run.finished_at = datetime.now(UTC)
        if fleet.journal:
            with contextlib.suppress(Exception):
                fleet.journal.write_end(fleet.run)
        fleet.close()
        fleet.emit("run_finished")
    return fleet.run


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel host tasks and wait (bounded) while they close their remote shells."""
    for t in tasks:
        t.cancel()
    t0 = time.monotonic()
    from fleetcheck.transports.base import CANCEL_GRACE

    with contextlib.suppress(Exception):
        await asyncio.wait(tasks, timeout=CANCEL_GRACE + 2.0)
    log.debug("cancelled %d host tasks in %.2f s", len(tasks), time.monotonic() - t0)
