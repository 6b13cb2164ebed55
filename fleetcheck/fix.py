"""`fleetcheck fix`: plan from the same facts as `run`, apply in batches on request, re-check, audit.

Flow: scan every host with the playbooks (one bundle, as `run`), apply waivers, and plan per host
the changes that would make each failing check pass (`fleetcheck.remedies`), or say why a check
has no safe automatic fix. Without `apply` that plan is the result. With `apply`, after the
caller's confirmation, hosts with changes for checks set to `remediate: true` go in batches of
`serial`: each host gets ONE static remedy script and ONE JSON argument, then the batch is
scanned again so every row shows before -> after. A batch where more than `max_fail_percent`
of the hosts failed stops the run; so does `stop` (Ctrl-C), but only between batches, so no
host is left half-way through its changes. Cancelling the task (a second Ctrl-C) cuts the
running batch short; its changes are then recorded as `interrupted`, their outcome unknown.
Every change tried is written to the audit log, one transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import signal
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcheck import eventloop, runner
from fleetcheck.checks.base import Facts
from fleetcheck.errors import HostError, ProtocolError, TimedOut, UserError
from fleetcheck.facts import FactsDocument
from fleetcheck.remedies import NO_SAFE_FIX, REMEDIES, Change, NoFix
from fleetcheck.remedies.bundle import RemedyOutputError, build_remedy_bundle, parse_remedy_output
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult
from fleetcheck.transports import TransportOptions, Transports, transport_name, worker_pool
from fleetcheck.transports.base import Transport, failure_context
from fleetcheck.transports.errors import map_exceptions, redact
from fleetcheck.transports.target import Target

FIX_SCHEMA = "fleetcheck/fix/v1"
#: Checks that fail only because another check fails: check id -> (that check, why).
FOLLOWS = {"wsb-cmdlets": ("wsb-feature", "the feature brings the Get-WBJob cmdlets")}
#: Seconds kept between the remedy script's own time limit and the host's deadline.
SCRIPT_MARGIN_S = 5.0


@dataclass(frozen=True)
class PlannedChange:
    change: Change
    enabled: bool  # the playbook sets `remediate: true` for the check


@dataclass
class HostPlan:
    """What fix would do on one host, and what it leaves to an admin."""

    host: str
    status: HostStatus
    message: str = ""
    changes: list[PlannedChange] = field(default_factory=list)
    no_fix: list[NoFix] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)

    @property
    def to_apply(self) -> list[Change]:
        return [p.change for p in self.changes if p.enabled]

    @property
    def not_enabled(self) -> list[str]:
        return list(dict.fromkeys(p.change.check_id for p in self.changes if not p.enabled))


@dataclass
class AppliedChange:
    """One change as the host reported it (`result`: changed, unchanged, failed, not run)."""

    change: Change
    result: str
    after: str | None = None
    error: str | None = None
    restart_needed: bool = False


@dataclass
class HostFix:
    host: str
    applied: list[AppliedChange] = field(default_factory=list)
    error: str | None = None  # the host could not be reached or answered garbage
    before: dict[str, CheckStatus] = field(default_factory=dict)
    after: dict[str, CheckStatus] = field(default_factory=dict)
    after_messages: dict[str, str] = field(default_factory=dict)
    after_row: HostResult | None = None  # the re-check's row
    batch: int = 0
    at: datetime | None = None  # when the host answered the remedy script

    @property
    def failed(self) -> bool:
        """Any tried change failed, or any check it tried to fix still fails after the re-check."""
        if self.error is not None or any(a.result == "failed" for a in self.applied):
            return True
        return any(self.after.get(a.change.check_id) is not CheckStatus.PASS for a in self.applied)


@dataclass
class FixResult:
    run_id: str
    started_at: datetime
    who: str
    scan: RunResult
    plans: list[HostPlan]
    apply: bool = False
    confirmed: bool = False
    hosts: dict[str, HostFix] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    stopped: str | None = None
    finished_at: datetime | None = None

    def final(self) -> RunResult:
        """The scan with every re-checked host's row replaced by its re-check (the state fix leaves)."""
        rows = [self.hosts[h.host].after_row or h if h.host in self.hosts else h for h in self.scan.hosts]
        interrupted = self.scan.interrupted or bool(self.stopped and self.stopped.startswith("interrupted"))
        return self.scan.model_copy(update={"hosts": rows, "interrupted": interrupted})

    def to_dict(self) -> dict[str, Any]:
        """The JSON report of `fix` (schema fleetcheck/fix/v1)."""
        return {
            "schema": FIX_SCHEMA,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "who": self.who,
            "apply": self.apply,
            "confirmed": self.confirmed,
            "stopped": self.stopped,
            "batches": self.batches,
            "hosts": [self._host_dict(p) for p in self.plans],
        }

    def _host_dict(self, plan: HostPlan) -> dict[str, Any]:
        fix = self.hosts.get(plan.host)
        return {
            "host": plan.host,
            "status": plan.status.value,
            "planned": [
                {"check": p.change.check_id, "change": p.change.summary, "before": p.change.before,
                 "after": p.change.after, "enabled": p.enabled}
                for p in plan.changes
            ],
            "no_safe_fix": [{"check": n.check_id, "reason": n.reason, "remediation": n.remediation} for n in plan.no_fix],
            "waived": plan.waived,
            "applied": [
                {"check": a.change.check_id, "change": a.change.summary, "result": a.result, "before": a.change.before,
                 "after": a.after, "error": a.error, "restart_needed": a.restart_needed,
                 "check_before": _status(fix.before.get(a.change.check_id)) if fix else None,
                 "check_after": _status(fix.after.get(a.change.check_id)) if fix else None}
                for a in (fix.applied if fix else [])
            ],
            "error": fix.error if fix else None,
            "batch": fix.batch if fix else None,
            "at": fix.at.isoformat() if fix and fix.at else None,
        }


def _status(status: CheckStatus | None) -> str | None:
    return status.value if status is not None else None


@dataclass
class FixOptions:
    """How to fix. `run` carries forks, timeout, transports, ... for the scans and the apply step."""

    run: runner.RunOptions = field(default_factory=runner.RunOptions)
    checks: set[str] | None = None  # only these check ids (None: all)
    apply: bool = False
    serial: int | None = None  # hosts per batch (None: all in one)
    max_fail_percent: float = 100.0
    waive: Callable[[RunResult], RunResult] | None = None  # waivers applied to each scan
    confirm: Callable[[list[HostPlan]], bool] | None = None  # asked once before anything changes
    stop: asyncio.Event | None = None  # set (Ctrl-C): no batch starts after it
    on_batch: Callable[[int, list[HostFix]], None] | None = None  # after each batch's re-check
    record: Callable[[FixResult, list[HostFix]], None] | None = None  # the audit log, per batch
    progress: Any = None  # an api.ProgressSink for the first scan (the re-checks are reported per batch)
    who: str = ""


def who_runs() -> str:
    """`user@machine` of the person running fix (never a credential)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# --------------------------------------------------------------------------- planning (pure)
def check_settings(playbooks: Sequence[Any]) -> dict[str, Any]:
    """Check id -> the settings that judged it (the first playbook enabling it, as `evaluate` does)."""
    chosen: dict[str, Any] = {}
    for pb in playbooks:
        for s in pb.checks.values():
            if s.id not in chosen or (s.enabled and not chosen[s.id].enabled):
                chosen[s.id] = s
    return chosen


def plan_host(result: HostResult, facts: FactsDocument | None, playbooks: Sequence[Any], only: set[str] | None = None) -> HostPlan:
    """The plan for one scanned host: changes for failing checks with a remedy, the rest explained."""
    plan = HostPlan(result.host, result.status, result.message)
    settings = check_settings(playbooks)
    view = Facts(facts) if facts is not None else None
    for c in result.checks:
        if only is not None and c.check_id not in only:
            continue
        if c.status is CheckStatus.WAIVED and c.check_id in REMEDIES:
            plan.waived.append(c.check_id)
            continue
        if c.status is not CheckStatus.FAIL:
            continue
        plan_check(plan, c, view, settings.get(c.check_id))
    planned = {p.change.check_id for p in plan.changes}
    for i, n in enumerate(plan.no_fix):
        cause = FOLLOWS.get(n.check_id)
        if cause is not None and cause[0] in planned:
            plan.no_fix[i] = NoFix(n.check_id, f"expected to pass once {cause[0]} is fixed ({cause[1]})", "")
    return plan


def plan_check(plan: HostPlan, c: CheckResult, view: Facts | None, setting: Any) -> None:
    rdef = REMEDIES.get(c.check_id)
    if rdef is None or setting is None or view is None:
        why = NO_SAFE_FIX.get(c.check_id, "no automatic fix for this check")
        plan.no_fix.append(NoFix(c.check_id, why, c.remediation))
        return
    got = rdef.plan(c, view, setting.params, setting.remedy)
    if isinstance(got, NoFix):
        plan.no_fix.append(got)
    else:
        plan.changes += [PlannedChange(ch, bool(setting.remediate)) for ch in got]


def batches_of(plans: Sequence[HostPlan], serial: int | None) -> list[list[HostPlan]]:
    """Hosts with something to apply, in inventory order, `serial` at a time."""
    todo = [p for p in plans if p.to_apply]
    size = max(1, serial or len(todo) or 1)
    return [todo[i : i + size] for i in range(0, len(todo), size)]


def batch_failed(fixes: Sequence[HostFix], max_fail_percent: float) -> bool:
    """More than `max_fail_percent` of the batch failed (Ansible's max_fail_percentage)."""
    if not fixes:
        return False
    failed = sum(1 for f in fixes if f.failed)
    return failed * 100.0 / len(fixes) > max_fail_percent


# --------------------------------------------------------------------------- the fleet part
async def _scan(
    hosts: Sequence[Any], playbooks: Sequence[Any], options: FixOptions, *, stoppable: bool = True
) -> tuple[RunResult, dict[str, FactsDocument]]:
    """One `run` of the playbooks, keeping each host's facts; the re-check after a batch is not stoppable."""
    facts: dict[str, FactsDocument] = {}
    progress = options.progress if stoppable else None

    def on_event(event: runner.RunEvent) -> None:
        if progress is not None and event.kind == "host_finished" and event.result is not None:
            progress.host_done(event.result)

    opts = dataclasses.replace(
        options.run, on_facts=lambda name, doc: facts.__setitem__(name, doc), stop=options.stop if stoppable else None,
        on_event=on_event,
    )
    if progress is not None:
        progress.run_started(len(hosts))
    scan = await runner.run_fleet(hosts, playbooks, opts)
    if progress is not None:
        progress.run_finished(scan, len(hosts))
    if options.waive is not None:
        scan = options.waive(scan)
    return scan, facts


class _Appliers:
    """The transports of the apply step: the registry's, or the run's given instances (tests, plugins)."""

    def __init__(self, run: runner.RunOptions) -> None:
        self.run = run
        self.executor = worker_pool(max(1, int(run.forks)))
        self.transports = Transports(TransportOptions(executor=self.executor, ssh_known_hosts=run.ssh_known_hosts),
                                     run.transports or ())

    def __call__(self, target: Target) -> Transport:
        if self.run.transport is not None:
            return self.run.transport
        try:
            return self.transports[transport_name(target, self.run.psrp_client)]
        except KeyError:
            raise ProtocolError(f"unknown transport {target.transport!r}", error_type="config") from None

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


async def _apply_host(host: Any, changes: list[Change], transport_for: Callable[[Target], Transport], options: FixOptions) -> HostFix:
    """Send one host its remedy script (no retry: a remedy is not sent twice blindly) and read the report."""
    fix = HostFix(host.name)
    target = runner.as_target(host)
    timeout = float(options.run.timeout if options.run.timeout is not None else target.timeout)
    bundle = build_remedy_bundle(changes, timeout_s=max(1, int(timeout - SCRIPT_MARGIN_S)))
    context = failure_context(target, timeout)
    try:
        with map_exceptions(context):
            transport = transport_for(target)
            output = await asyncio.wait_for(transport.run(target, bundle.script, bundle.args_json, timeout=timeout),
                                            timeout + runner.DEADLINE_GRACE)
        report = parse_remedy_output(output.stdout) if output.stdout.strip() else None
        if report is None:
            first = output.errors[0] if output.errors else f"exit code {output.exit_code}"
            raise RemedyOutputError(f"the remedy script failed on the host: {first}")
        if report.unsupported:
            raise RemedyOutputError(f"unsupported: {report.unsupported}")
    except asyncio.CancelledError:
        raise
    except (HostError, RemedyOutputError) as exc:
        message = str(exc) if not isinstance(exc, HostError) else (
            f"no answer within {timeout:g} s" if isinstance(exc, TimedOut) and exc.error_type == "timeout" else exc.message)
        fix.error = redact(message, context.secrets)[:300]
        fix.applied = [AppliedChange(c, "failed", error=fix.error) for c in changes]
        fix.at = datetime.now(UTC)
        return fix
    fix.at = datetime.now(UTC)
    results = list(report.results)
    for i, c in enumerate(changes):
        r = results[i] if i < len(results) and results[i].check == c.check_id else None
        if r is None:
            fix.applied.append(AppliedChange(c, "not run", error="the host did not report this change"))
        elif r.error is not None:
            msg = redact(f"{r.error.type}: {r.error.message}", context.secrets)[:300]
            fix.applied.append(AppliedChange(c, "failed", r.after, msg, r.restart_needed))
        else:
            fix.applied.append(AppliedChange(c, "changed" if r.changed else "unchanged", r.after, None, r.restart_needed))
    return fix


async def _apply_batch(batch: list[HostPlan], by_name: dict[str, Any], playbooks: Sequence[Any], options: FixOptions,
                       transport_for: Callable[[Target], Transport], number: int, scan: RunResult) -> list[HostFix]:
    sem = asyncio.Semaphore(max(1, int(options.run.forks)))

    async def one(plan: HostPlan) -> HostFix:
        async with sem:
            return await _apply_host(by_name[plan.host], plan.to_apply, transport_for, options)

    fixes = list(await asyncio.gather(*(one(p) for p in batch)))
    for fix in fixes:
        fix.at = fix.at or datetime.now(UTC)
    recheck, _ = await _scan([by_name[p.host] for p in batch], playbooks, options, stoppable=False)
    before = {h.host: h for h in scan.hosts}
    after = {h.host: h for h in recheck.hosts}
    for fix in fixes:
        fix.batch = number
        fix.before = {c.check_id: c.status for c in before[fix.host].checks} if fix.host in before else {}
        row = after.get(fix.host)
        if row is not None:
            fix.after_row = row
            fix.after = {c.check_id: c.status for c in row.checks}
            fix.after_messages = {c.check_id: c.message for c in row.checks}
            if not row.checks and fix.error is None:
                fix.error = f"re-check failed: {row.message}"
    return fixes


async def fix_fleet(hosts: Sequence[Any], playbooks: Sequence[Any], options: FixOptions | None = None) -> FixResult:
    """Plan, and with `options.apply` apply in batches and re-check (see the module docstring)."""
    options = options or FixOptions()
    started = datetime.now(UTC)
    scan, facts = await _scan(hosts, playbooks, options)
    plans = [plan_host(h, facts.get(h.host), playbooks, options.checks) for h in scan.hosts]
    order = {h.name: i for i, h in enumerate(hosts)}
    plans.sort(key=lambda p: order.get(p.host, len(order)))
    result = FixResult(uuid.uuid4().hex[:12], started, options.who or who_runs(), scan, plans, apply=options.apply)
    if scan.interrupted:
        result.stopped = "interrupted during the scan: nothing was changed"
    if scan.interrupted or not options.apply or not any(p.to_apply for p in plans):
        result.finished_at = datetime.now(UTC)
        return result
    result.confirmed = options.confirm(plans) if options.confirm is not None else True
    if not result.confirmed:
        result.stopped = "not confirmed: nothing was changed"
        result.finished_at = datetime.now(UTC)
        return result
    by_name = {h.name: h for h in hosts}
    appliers = _Appliers(options.run)
    try:
        for number, batch in enumerate(batches_of(plans, options.serial), start=1):
            if options.stop is not None and options.stop.is_set():
                result.stopped = f"interrupted before batch {number}: nothing more was changed"
                break
            try:
                fixes = await _apply_batch(batch, by_name, playbooks, options, appliers, number, scan)
            except asyncio.CancelledError:  # a second Ctrl-C: leave now, say what is unknown
                _abandon(result, batch, number, options)
                break
            result.batches.append([f.host for f in fixes])
            result.hosts.update({f.host: f for f in fixes})
            if options.record is not None:
                options.record(result, fixes)
            if options.on_batch is not None:
                options.on_batch(number, fixes)
            if batch_failed(fixes, options.max_fail_percent):
                failed = sum(1 for f in fixes if f.failed)
                result.stopped = (f"batch {number}: {failed} of {len(fixes)} hosts failed, more than "
                                  f"--max-fail-percent {options.max_fail_percent:g}; later batches not started")
                break
    finally:
        appliers.close()
    result.finished_at = datetime.now(UTC)
    return result


# --------------------------------------------------------------------------- the use case
@dataclass
class FixRequest:
    """Everything `fleetcheck fix` needs besides the inventory and playbooks (all validated first)."""

    limit: str | None = None
    checks: Sequence[str] | None = None
    apply: bool = False
    serial: int | None = None
    max_fail_percent: float = 100.0
    forks: int = 50
    timeout: float | None = None
    history: Path | None = None  # audit trail; None: not recorded
    waivers: Path | None = None
    ssh_known_hosts: str | None = "default"
    ask_pass: Callable[[str], str] | None = None  # prompt for a password per username
    confirm: Callable[[list[HostPlan]], bool] | None = None
    on_batch: Callable[[int, list[HostFix]], None] | None = None
    on_stop_requested: Callable[[], None] | None = None
    progress: Any = None  # an api.ProgressSink shown while the hosts are scanned
    transports: Any = None  # name -> Transport (tests, plugins)


@dataclass
class FixOutcome:
    result: FixResult
    exit_code: int


class FixUsageError(UserError):
    """A fix request that cannot run (an unknown check id); exit code 2."""


def waiver_filter(path: Path | None) -> Callable[[RunResult], RunResult] | None:
    if path is None:
        return None
    from datetime import date

    from fleetcheck.waivers import apply_waivers, load_waivers

    waivers = load_waivers(path)
    return lambda run: apply_waivers(run, waivers, date.today())[0]


def _abandon(result: FixResult, batch: list[HostPlan], number: int, options: FixOptions) -> None:
    """Record a batch cut short: its changes are `interrupted`, their outcome unknown until the next scan."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    now = datetime.now(UTC)
    fixes = [HostFix(p.host, applied=[AppliedChange(c, "interrupted") for c in p.to_apply], batch=number, at=now,
                     error="interrupted while the remedies ran; run fix again to see the state") for p in batch]
    result.batches.append([f.host for f in fixes])
    result.hosts.update({f.host: f for f in fixes})
    result.stopped = (f"interrupted during batch {number}: the outcome on {', '.join(f.host for f in fixes)} is unknown; "
                      "later batches not started")
    if options.record is not None:
        options.record(result, fixes)


def drive(hosts: list[Any], playbooks: list[Any], options: FixOptions, on_stop: Callable[[], None] | None = None) -> FixResult:
    """Run `fix_fleet` in an event loop of its own. The first Ctrl-C or SIGTERM stops between batches;
    a second one cuts the running batch short (its outcome is then unknown and recorded so)."""
    holder: list[FixResult] = []

    async def main() -> None:
        stop = asyncio.Event()
        options.stop = stop
        loop = asyncio.get_running_loop()

        task = asyncio.current_task()

        def request_stop() -> None:
            if stop.is_set() and task is not None:  # the second Ctrl-C: stop the running batch too
                task.cancel()
                return
            if on_stop is not None:
                on_stop()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, request_stop)
        try:
            holder.append(await fix_fleet(hosts, playbooks, options))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

    eventloop.run(main())
    return holder[0]
