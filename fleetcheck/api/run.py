"""`run`: one fleet check from validated inputs to reports and exit code, and the process's exit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from fleetcheck import __version__, eventloop
from fleetcheck.api.inputs import _nightly, load_inventory, load_playbooks, run_scope
from fleetcheck.api.options import DEFAULT_PLAYBOOK, Console, ReportSpec, RunOptions, RunOutcome
from fleetcheck.errors import UserError
from fleetcheck.results import EXIT_INTERRUPTED, EXIT_OK, FAIL_ON, HostResult, RunResult, exit_code

if TYPE_CHECKING:
    from fleetcheck.dispatch import SiteTransport
    from fleetcheck.inventory import Host, Inventory
    from fleetcheck.nightly import NightlyOptions
    from fleetcheck.playbook import Playbook
    from fleetcheck.reports.base import ReportContext
    from fleetcheck.reports.json import HostSpool
    from fleetcheck.runner import RunEvent

#: The logger keeps the name it had before the API became a package (logs are matched on it).
log = logging.getLogger("fleetcheck.api")


#: After a run, how long transport worker threads get to close their remote shells.
EXIT_GRACE_S = 5.0
#: Young-generation threshold during a run (CPython's default is 700): a 1,000-host run
#: allocates millions of short-lived objects; collecting every 700 of them, and promoting
#: what survives into ever larger full collections of the growing results, cost ~0.6 s of
#: event-loop time per 1,000 hosts. Cyclic garbage waits a little longer, bounded by this count.
RUN_GC_THRESHOLD0 = 20_000


def run(
    inventory: Inventory | str | Path,
    playbooks: Sequence[str | Path | Playbook] = (),
    options: RunOptions | None = None,
) -> RunOutcome:
    """Check every host of `inventory` (after `options.limit`) against `playbooks`.

    No playbooks: the inventory's, else the System State Backup playbook. Raises `UserError`
    before any connection when an input is unusable; returns the outcome otherwise, also
    when interrupted (Ctrl-C, SIGTERM: `run.interrupted`, exit code 4).
    """
    from fleetcheck.inventory import apply_limit

    options = options or RunOptions()
    inv = inventory if not isinstance(inventory, str | Path) else load_inventory(inventory)
    hosts = apply_limit(inv.hosts, inv.groups, options.limit)
    if options.shard is not None:
        from fleetcheck.dispatch.shard import select

        hosts = select(hosts, options.shard)
    if options.psrp_client not in (None, "pypsrp", "native"):
        raise UserError(f"--psrp-client '{options.psrp_client}': expected pypsrp or native")
    names = [str(getattr(p, "name", p)) for p in playbooks] or list(inv.playbooks) or [DEFAULT_PLAYBOOK]
    loaded = load_playbooks(list(playbooks) or names)
    if options.fail_on not in FAIL_ON:
        raise UserError(f"--fail-on '{options.fail_on}': expected {', '.join(FAIL_ON)}")
    from fleetcheck.selection import select as select_checks

    loaded = select_checks(loaded, options.tags, options.skip_tags, options.checks)
    dispatched = options.broker is not None or options.dispatcher is not None
    _kerberos_preflight([h for h in hosts if not dispatched or h.site == "local"])  # a site's workers have their own
    hosts = _credentials(hosts, options, dispatched=dispatched)
    opts = _nightly(options.history, options.since, options.waivers or inv.waivers, options.mail)
    scope = run_scope(inv.path, options.limit)
    if options.shard is not None:
        from fleetcheck.dispatch.shard import scope_with_shard

        scope = scope_with_shard(scope, options.shard)
    with _run_guard(opts):
        if options.progress is not None:
            options.progress.run_started(len(hosts))
            plan = getattr(options.progress, "plan", None)
            if plan is not None:  # sinks that show each running host's time against its deadline
                plan({h.name: options.timeout or h.timeout for h in hosts})
        spool = _report_spool(options.reports)
        try:
            result = _run_fleet(hosts, loaded, names, scope, options, spool)
            if options.progress is not None:
                options.progress.run_finished(result, len(hosts))
            outcome = _finish(result, len(hosts), opts, options.reports, options.console, options.fail_on, spool)
        finally:
            if spool is not None:
                spool.close()
    outcome.warnings = list(inv.warnings)
    return outcome


def _run_guard(opts: NightlyOptions | None) -> contextlib.AbstractContextManager[None]:
    if opts is None:
        return contextlib.nullcontext()
    from fleetcheck import nightly

    return nightly.run_guard(opts)


class KerberosUnavailable(UserError):
    """Kerberos hosts, but this machine cannot speak Kerberos (no gssapi or no krb5.conf)."""


def _kerberos_preflight(hosts: Sequence[Host]) -> None:
    """Before any connection: Kerberos hosts need gssapi (pykerberos for winrm) and a krb5.conf."""
    from fleetcheck.transports.kerberos import preflight_message

    transports: set[str] = {h.transport for h in hosts if h.auth == "kerberos"}
    message = preflight_message(transports) if transports else None
    if message:
        names = [h.name for h in hosts if h.auth == "kerberos"]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise KerberosUnavailable(f"{message} (hosts with auth: kerberos: {shown})")


def _credentials(hosts: list[Host], options: RunOptions, *, dispatched: bool) -> list[Host]:
    """Passwords for the hosts checked here; a site's hosts keep only the variable's NAME.

    A site's worker reads the password from its own environment, so no password crosses the
    broker: a remote host with a password written in the inventory is refused.
    """
    from fleetcheck.inventory import load_credentials
    from fleetcheck.inventory.settings import host_needs_password

    if not dispatched:
        return load_credentials(hosts, ask_pass=options.prompt is not None, prompt=options.prompt)
    local = [h for h in hosts if h.site == "local"]
    loaded = iter(load_credentials(local, ask_pass=options.prompt is not None, prompt=options.prompt))
    for host in hosts:
        if host.site == "local":
            continue
        if host.password is not None:
            raise UserError(
                f"host {host.name} (site {host.site}) has its password in the inventory; a site's worker "
                "reads it from its own environment: set password_env to the variable's name instead"
            )
        if host.password_env is None and host_needs_password(host):
            raise UserError(
                f"host {host.name} (site {host.site}) needs a password: set password_env to the name of "
                "the variable the site's workers have in their environment"
            )
    return [next(loaded) if h.site == "local" else h for h in hosts]


def _sites(hosts: list[Host], options: RunOptions) -> SiteTransport | None:
    """The coordinator's side of the sites, when a broker or dispatcher is given and a host needs it."""
    if options.broker is None and options.dispatcher is None:
        return None
    if all(h.site == "local" for h in hosts):
        return None
    from fleetcheck.dispatch import SiteTransport

    dispatcher = options.dispatcher
    if dispatcher is None:
        try:
            from fleetcheck.dispatch.celery_sites import CeleryDispatcher
        except ImportError as exc:
            raise UserError(f"--broker needs the sites extra: pip install 'fleetcheck[sites]' ({exc})") from None
        dispatcher = CeleryDispatcher(str(options.broker))
    return SiteTransport(
        dispatcher,
        password_envs={h.name: h.password_env for h in hosts if h.site != "local"},
        site_wait=options.site_wait,
        batch_size=options.batch_size,
        run_timeout=options.timeout,
        psrp_client=_psrp_client(options.psrp_client),
    )


def _report_spool(reports: Sequence[ReportSpec]) -> HostSpool | None:
    """A json report's host texts are rendered during the run (`reports.json.HostSpool`)."""
    if not any(spec.format == "json" for spec in reports):
        return None
    from fleetcheck.reports.json import HostSpool

    try:
        return HostSpool()
    except OSError as exc:  # no temporary folder to write to: the report is rendered at the end
        log.warning("report texts are rendered at the end (%s)", exc)
        return None


def _run_fleet(
    hosts: list[Host], playbooks: list[Playbook], names: list[str], scope: str, options: RunOptions,
    spool: HostSpool | None = None,
) -> RunResult:
    """Drive the runner in its own event loop; a second Ctrl-C still returns what finished."""
    from fleetcheck import runner

    done: list[HostResult] = []

    on_start = getattr(options.progress, "host_started", None)
    log.info("checking %d hosts with %s, %d at a time", len(hosts), ", ".join(names), options.forks)

    def on_event(event: RunEvent) -> None:
        if event.kind == "host_finished" and event.result is not None:
            log.info("%s: %s in %.1f s", event.result.host, event.result.status.value, event.result.duration_s)
            done.append(event.result)
            if spool is not None:
                spool.add(event.result)
            if options.progress is not None:
                options.progress.host_done(event.result)
        elif event.kind == "host_started" and event.host is not None and on_start is not None:
            on_start(event.host)
        elif event.kind == "host_retry":
            log.info("%s: retrying after %s", event.host, event.message)

    # The result leaves through a holder, not as the main task's result: on its way out,
    # asyncio.run (3.11) formats repr() of the finished task, i.e. of the whole RunResult
    # (~0.3 s per 1,000 hosts).
    holder: list[RunResult] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        sites = _sites(hosts, options)
        if options.handle_sigterm:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGTERM, stop.set)
        run_options = runner.RunOptions(
            forks=options.forks,
            timeout=options.timeout,
            journal=options.journal,
            save_facts=options.save_facts,
            inventory=scope,
            ssh_known_hosts=options.ssh_known_hosts,
            psrp_client=_psrp_client(options.psrp_client),
            transports=options.transports,
            on_event=on_event,
            stop=stop,
            route=None if sites is None else (lambda t: sites if t.site != "local" else None),
        )
        try:
            holder.append(await runner.run_fleet(hosts, playbooks, run_options))
        finally:
            if sites is not None:
                await sites.close(interrupted=not holder or holder[0].interrupted)
            if options.handle_sigterm:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signal.SIGTERM)

    started = datetime.now(UTC)
    try:
        with tuned_gc():
            eventloop.run(main())
    except KeyboardInterrupt:  # a second Ctrl-C while hosts were closing
        return _partial_result(scope, names, done, started)
    return holder[0]


def _psrp_client(name: str | None) -> Literal["pypsrp", "native"] | None:
    """The run-wide PSRP client override, already checked by `run` before any connection."""
    if name in (None, "pypsrp", "native"):
        return cast('Literal["pypsrp", "native"] | None', name)
    raise UserError(f"--psrp-client '{name}': expected pypsrp or native")


def _partial_result(inventory: str, playbooks: list[str], done: list[HostResult], started: datetime) -> RunResult:
    return RunResult(
        run_id=started.strftime("%Y%m%dT%H%M%SZ"),
        started_at=started,
        finished_at=datetime.now(UTC),
        inventory=inventory,
        playbooks=playbooks,
        hosts=done,
        interrupted=True,
        fleetcheck_version=__version__,
    )


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """Fewer garbage collections during a run, the process's state restored afterwards.

    What start-up loaded (modules, schemas, playbooks) is never garbage: `gc.freeze()` keeps
    collections from walking it again and again; the young generation is collected less often.
    """
    old, enabled = gc.get_threshold(), gc.isenabled()
    gc.freeze()
    gc.set_threshold(max(old[0], RUN_GC_THRESHOLD0), *old[1:])
    gc.enable()  # the command's entry may start with it off: a run's cyclic garbage must not pile up
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
        if not enabled:
            gc.disable()


def _finish(
    result: RunResult, total: int, opts: NightlyOptions | None, reports: Sequence[ReportSpec], console: Console | None,
    fail_on: str = "any", spool: HostSpool | None = None,
) -> RunOutcome:
    """Waivers, history, changes, mail (fleetcheck.nightly), then the reports and the exit code."""
    from fleetcheck.reports.base import ReportContext

    outcome = RunOutcome(run=result, exit_code=EXIT_OK, total_hosts=total, context=ReportContext())
    if opts is not None:
        from fleetcheck import nightly

        done = nightly.finish_run(result, opts, console)
        outcome.run, outcome.context, outcome.changes = done.run, done.context, done.changes
        outcome.summary, outcome.notes, outcome.errors = done.summary, done.notes, done.errors
    outcome.context.prerendered = spool
    outcome.report_errors = write_reports(outcome.run, reports, outcome.context)
    outcome.exit_code = exit_code(outcome.run, fail_on)
    if outcome.report_errors and outcome.exit_code == EXIT_OK:
        outcome.exit_code = EXIT_INTERRUPTED
    return outcome


def write_reports(result: RunResult, specs: Sequence[ReportSpec], context: ReportContext) -> list[str]:
    """Write every requested report; one failing writer does not stop the others."""
    from fleetcheck.reports.base import get_writer
    from fleetcheck.reports.sanitize import sanitize_result

    result = sanitize_result(result)  # host text is safe for terminals and XML in every format
    problems: list[str] = []
    for spec in specs:
        try:
            get_writer(spec.format)(result, spec.path, context)
        except (OSError, ImportError, AttributeError) as exc:
            problems.append(f"{spec.format} report {spec.path}: {exc}")
    return problems




def stop_workers(grace: float = EXIT_GRACE_S) -> int:
    """Give transport worker threads up to `grace` seconds to close their remote shells.

    Returns how many still run: a thread stuck in a hung read would only delay the process's
    exit by up to its host's deadline, so the caller may leave without waiting for it.
    """
    from fleetcheck import transports

    return transports.stop_workers(grace)
