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
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fleetcheck import __version__
from fleetcheck.checks.authmech import ntlm_fallback
from fleetcheck.errors import HostError, ProtocolError, TimedOut
from fleetcheck.factsfiles import save_facts
from fleetcheck.hosttasks import cancel_all, supervise
from fleetcheck.inventory.model import Host
from fleetcheck.journal import Journal
from fleetcheck.reports import sanitize
from fleetcheck.results import CheckResult, HostResult, HostStatus, RunResult, host_status
from fleetcheck.results import exit_code as exit_code
from fleetcheck.transports import TransportOptions, Transports, transport_name, worker_pool
from fleetcheck.transports.base import ScriptOutput, Transport, failure_context
from fleetcheck.transports.errors import map_exceptions, redact
from fleetcheck.transports.target import Target

if TYPE_CHECKING:
    from fleetcheck.facts import FactsDocument
    from fleetcheck.playbook import Playbook

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
    #: SSH host key policy when a host sets none: "default" (~/.ssh/known_hosts), "accept" (no check) or a file.
    ssh_known_hosts: str | None = "default"
    #: Set it (e.g. from a SIGTERM handler) to stop like Ctrl-C.
    stop: asyncio.Event | None = None
    #: Transports by name (tests, plugins), or instances filed under their `name`; the rest come
    #: from the registry in `fleetcheck.transports`.
    transports: Mapping[str, Transport] | Sequence[Transport] | None = None
    #: One transport for every host, whatever its inventory says (e.g. a `MockTransport`).
    transport: Transport | None = None
    #: Overrides every host's `psrp_client` (pypsrp | native) when set (`--psrp-client`).
    psrp_client: Literal["pypsrp", "native"] | None = None
    #: A transport chosen per host before the registry (None: the usual one). A transport with
    #: `remote = True` runs the host elsewhere (a site's worker): it holds no fork slot here and
    #: owns the host's deadline and retries.
    route: Callable[[Target], Transport | None] | None = None
    #: Called with (host name, facts document) for every host whose facts were read (fix plans from them).
    on_facts: Callable[[str, FactsDocument], None] | None = None


@dataclass
class Plan:
    """What every host runs: one static script, one JSON argument."""

    script: str
    args_json: str
    playbook_names: list[str] = field(default_factory=list)
    check_ids: list[str] = field(default_factory=list)


def build_plan(playbooks: Sequence[Playbook]) -> Plan:
    """Merge the playbooks' probe requests into one bundle."""
    from fleetcheck.playbook import merge_probe_requests
    from fleetcheck.probes.bundle import build_bundle

    bundle = build_bundle(merge_probe_requests(list(playbooks)))
    names = [str(getattr(pb, "name", pb)) for pb in playbooks]
    return Plan(script=bundle.script, args_json=bundle.args_json, playbook_names=names, check_ids=_check_ids(playbooks))


def _check_ids(playbooks: Sequence[Playbook]) -> list[str]:
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
    target: Target | None, output: ScriptOutput, playbooks: Sequence[Playbook], scan_time: datetime
) -> tuple[HostStatus, str, list[CheckResult], FactsDocument | None, str | None]:
    """Script output -> (status, message, checks, facts or None, error_type)."""
    from fleetcheck.checks import EvalContext, evaluate, unsupported_reason
    from fleetcheck.probes.bundle import parse_facts

    secrets = target.secrets() if target is not None else ()
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


def internal_error(target: Target, what: str, exc: BaseException) -> ProtocolError:
    """A defect or local failure while handling one host: that host's row, never the run's end."""
    detail = redact(" ".join(str(exc).split()), target.secrets())[:300]
    return ProtocolError(f"internal error {what}: {type(exc).__name__}: {detail}", error_type="internal")


# --- the orchestrator -------------------------------------------------------------------


@dataclass
class _Collected:
    """What the network part of one host produced: output or the failure."""

    started_at: datetime
    t0: float
    attempts: int = 0
    output: ScriptOutput | None = None
    failure: HostError | None = None
    t1: float | None = None  # when the network part ended


def _per_host_deadline(exc: HostError, timeout: float) -> HostError:
    """A transport reports the time it was given for its attempt; the admin reads the host's deadline."""
    if isinstance(exc, TimedOut) and exc.error_type == "timeout":
        return TimedOut(f"no answer within {timeout:g} s", transient=exc.transient)
    return exc


def as_target(host: Host | Target) -> Target:
    """The typed target for an inventory host (a `Target` passes through)."""
    return host if isinstance(host, Target) else host.to_target()


class _Fleet:
    """State of one run (counts, journal, transports)."""

    def __init__(
        self, targets: Sequence[Target], playbooks: Sequence[Playbook], plan: Plan, options: RunOptions
    ) -> None:
        self.targets = list(targets)
        self.playbooks = list(playbooks)
        self.plan = plan
        self.options = options
        self.forks = max(1, int(options.forks))
        self.executor: concurrent.futures.ThreadPoolExecutor = worker_pool(self.forks)
        self.transports = Transports(
            TransportOptions(executor=self.executor, ssh_known_hosts=options.ssh_known_hosts),
            options.transports or (),
        )
        self.sem = asyncio.Semaphore(self.forks)
        self.judging = asyncio.Lock()
        self.waiting_to_judge = 0
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

    def transport_for(self, target: Target) -> Transport:
        """The run's single transport if given, else the target's by name (ProtocolError if unknown)."""
        if self.options.transport is not None:
            return self.options.transport
        routed = self.options.route(target) if self.options.route is not None else None
        if routed is not None:
            return routed
        name = transport_name(target, self.options.psrp_client)
        try:
            return self.transports[name]
        except KeyError:
            raise ProtocolError(f"unknown transport {target.transport!r}", error_type="config") from None

    def emit(self, kind: EventKind, host: str | None = None, result: HostResult | None = None, message: str = "") -> None:
        cb = self.options.on_event
        if cb is None:
            return
        try:
            cb(RunEvent(kind, len(self.targets), self.done, self.failed, host, result, message))
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
        try:
            text: str | None = result.model_dump_json()  # read once: the journal's line and the report's safety check
        except ValueError:  # text UTF-8 cannot encode; the report boundary walks the row
            text = None
        sanitize.note_row(result, text)
        if self.journal:
            try:
                self.journal.write_host(self.run.run_id, result, text)
            except (OSError, ValueError) as exc:  # the row stays in the result; the close reports lasting trouble
                log.error("journal write for %s failed: %s", result.host, type(exc).__name__)
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

    async def host_task(self, target: Target) -> None:
        # The slot covers the network part only; judging happens after the shell is closed.
        # A host checked elsewhere (a site's worker) takes no slot: its worker has its own forks.
        async with contextlib.nullcontext() if self._remote(target) else self.sem:
            if self.options.stop is not None and self.options.stop.is_set():
                return
            self.emit("host_started", target.name)
            collected = await self.collect(target)
        collected.t1 = asyncio.get_running_loop().time()
        await self.judge_in_turn(target, collected)

    async def judge_in_turn(self, target: Target, collected: _Collected) -> None:
        """Judge one host per pass of the event loop, behind the answers that arrived meanwhile.

        Those answers carry other hosts' next requests; judging fills the time the network
        leaves. Judging in one pass all the hosts that finish together (a fleet's first wave
        does) would hold every other host's next request back by a few milliseconds each and
        keep the waves bunched for the rest of the run. A backlog of `forks` hosts is judged at once
        instead: collected output waiting for its turn is memory, and a CPU-bound run must not
        outpace its judging.
        """
        if self.waiting_to_judge >= self.forks:
            self.judge(target, collected)
            return
        self.waiting_to_judge += 1
        try:
            await self.judging.acquire()
        except asyncio.CancelledError:
            self.judge(target, collected)  # a stopped run keeps every host it collected
            raise
        finally:
            self.waiting_to_judge -= 1
        try:
            self.judge(target, collected)
            await asyncio.sleep(0)
        finally:
            self.judging.release()

    def judge(self, target: Target, collected: _Collected) -> None:
        """Judge and record one host's row; its data never ends the run."""
        try:
            result = self.finish(target, collected)
        except Exception as exc:
            log.exception("judging %s failed", target.name)
            result = self.row(target, collected, internal_error(target, "while judging the host", exc))
        self.record(result)

    def _remote(self, target: Target) -> bool:
        route = self.options.route
        return route is not None and getattr(route(target), "remote", False) is True

    async def collect(self, target: Target) -> _Collected:
        """Run the bundle with retries for transient failures, all within the host's deadline."""
        timeout = float(self.options.timeout if self.options.timeout is not None else target.timeout)
        loop = asyncio.get_running_loop()
        got = _Collected(started_at=datetime.now(UTC), t0=loop.time())
        deadline = got.t0 + timeout
        try:
            transport = self.transport_for(target)
        except HostError as exc:
            got.failure = exc
            return got
        context = failure_context(target, timeout)
        if getattr(transport, "remote", False) is True:  # the worker keeps the deadline and retries
            got.attempts = 1
            try:
                with map_exceptions(context):
                    got.output = await transport.run(target, self.plan.script, self.plan.args_json, timeout=timeout)
            except HostError as exc:
                got.failure = exc
            return got
        while True:
            got.attempts += 1
            left = deadline - loop.time()
            try:
                with map_exceptions(context):  # a plugin transport that lets a library error through
                    got.output = await asyncio.wait_for(
                        transport.run(target, self.plan.script, self.plan.args_json, timeout=left),
                        left + DEADLINE_GRACE,
                    )
                return got
            except HostError as exc:
                failure = _per_host_deadline(exc, timeout)
                delay = self.options.backoff * (2 ** (got.attempts - 1)) * (0.8 + 0.4 * random.random())
                if (
                    failure.transient
                    and got.attempts <= self.options.retries
                    and deadline - loop.time() - delay >= MIN_ATTEMPT_S
                ):
                    self.emit("host_retry", target.name, message=failure.message)
                    await asyncio.sleep(delay)
                    continue
                got.failure = failure
                return got

    def finish(self, target: Target, got: _Collected) -> HostResult:
        """Judge what was collected (pure, local) into the host's result row."""
        if got.failure is not None or got.output is None:
            return self.row(target, got, got.failure or ProtocolError("no output", error_type="internal"))
        # a site's worker says when the host answered: rules about the host's clock compare with that
        scan_time = getattr(got.output, "scanned_at", None) or datetime.now(UTC)
        status, message, checks, facts, error_type = judge_output(target, got.output, self.playbooks, scan_time)
        warning = ntlm_fallback(target.auth, got.output.auth_mechanism, self.playbooks)
        if warning is not None:
            checks.append(warning)
        if facts is not None and self.options.on_facts is not None:
            self.options.on_facts(target.name, facts)
        if facts is not None and self.options.save_facts is not None:
            facts = facts.model_copy(update={"scanned_at": scan_time.isoformat()})
            try:
                save_facts(self.options.save_facts, target.name, facts)
            except Exception as exc:  # a full disk or an impossible file name: this host's row says so
                log.warning("saving the facts of %s failed: %s", target.name, exc)
                return self.row(target, got, internal_error(target, "while saving the facts", exc))
        return self._result(
            target, got, status=status, message=message, error_type=error_type, checks=checks,
            auth_mechanism=got.output.auth_mechanism,
        )

    def row(self, target: Target, got: _Collected, failure: HostError) -> HostResult:
        """The result row of a host that failed: its status, sentence and error type."""
        return self._result(target, got, status=failure.status, message=failure.message, error_type=failure.error_type)

    def _result(self, target: Target, got: _Collected, **outcome: Any) -> HostResult:
        return HostResult(
            host=target.name,
            address=target.address,
            transport=target.transport,
            groups=list(target.groups),
            started_at=got.started_at,
            attempts=got.attempts,
            duration_s=self._duration(got),
            **outcome,
        )

    @staticmethod
    def _duration(got: _Collected) -> float:
        return round((got.t1 if got.t1 is not None else asyncio.get_running_loop().time()) - got.t0, 3)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        if self.journal:
            self.journal.close()  # fsyncs what is pending


async def run_fleet(
    hosts: Iterable[Host | Target],
    playbooks: Sequence[Playbook],
    options: RunOptions | None = None,
    *,
    plan: Plan | None = None,
) -> RunResult:
    """Run the playbooks on every host; always returns a RunResult (partial when interrupted)."""
    options = options or RunOptions()
    fleet = _Fleet([as_target(h) for h in hosts], playbooks, plan or build_plan(playbooks), options)
    if fleet.journal:
        fleet.journal.write_start(fleet.run)
    fleet.emit("run_started")
    tasks = [asyncio.create_task(fleet.host_task(t), name=f"host:{t.name}") for t in fleet.targets]
    stopper = asyncio.create_task(options.stop.wait()) if options.stop is not None else None
    try:
        await supervise(tasks, stopper)
    except asyncio.CancelledError:
        fleet.run.interrupted = True
        await cancel_all(tasks)
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except BaseException:
        await cancel_all(tasks)
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
