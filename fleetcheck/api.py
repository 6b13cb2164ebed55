"""fleetcheck as a library: the use cases the CLI calls, usable from a notebook or a scheduler.

`run(inventory, playbooks, options)` owns one fleet check from start to end: it validates
every input before the first connection, holds the history lock, drives the runner in its
own event loop (SIGTERM stops like Ctrl-C, garbage collection tuned for the run), keeps
partial results when interrupted, applies waivers, records history, computes the changes,
writes the reports, sends the mail and decides the exit code. `evaluate_saved(facts_dir,
playbooks, options)` does the same for facts saved by an earlier run, without the network.

Bad input raises a `fleetcheck.errors.UserError` subclass whose message names the file and the
fix; problems that must not lose the run (history disk full, SMTP down, one report path) end
up in `RunOutcome.errors`. Progress goes to a `ProgressSink` the caller implements.

    from fleetcheck import api
    outcome = api.run("prod.yml", ["system-state-backup"], api.RunOptions(forks=20))
    outcome.exit_code, outcome.run.counts()
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from fleetcheck import __version__
from fleetcheck.errors import UserError
from fleetcheck.results import EXIT_INTERRUPTED, EXIT_OK, FAIL_ON, HostResult, RunResult, exit_code

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fleetcheck.changes import ChangeSet
    from fleetcheck.dispatch import Dispatcher, SiteTransport
    from fleetcheck.dispatch.shard import Shard
    from fleetcheck.facts import FactsDocument
    from fleetcheck.fix import FixOutcome, FixRequest
    from fleetcheck.inventory import Host, Inventory
    from fleetcheck.mail import MailSettings
    from fleetcheck.nightly import NightlyOptions
    from fleetcheck.playbook import Playbook
    from fleetcheck.reports.base import ReportContext
    from fleetcheck.runner import RunEvent
    from fleetcheck.transports.base import Transport

DEFAULT_PLAYBOOK = "system-state-backup"
JOURNAL_ROTATE_BYTES = 50 * 1024 * 1024
MAX_FACTS_BYTES = 50 * 1024 * 1024
#: After a run, how long transport worker threads get to close their remote shells.
EXIT_GRACE_S = 5.0
#: Young-generation threshold during a run (CPython's default is 700): a 1,000-host run
#: allocates millions of short-lived objects; collecting every 700 of them, and promoting
#: what survives into ever larger full collections of the growing results, cost ~0.6 s of
#: event-loop time per 1,000 hosts. Cyclic garbage waits a little longer, bounded by this count.
RUN_GC_THRESHOLD0 = 20_000


class ProgressSink(Protocol):
    """What a caller shows while hosts finish (the CLI draws a bar or prints lines)."""

    def run_started(self, total: int) -> None:
        """Inputs are valid and `total` hosts are about to be checked."""

    def host_done(self, host: HostResult) -> None:
        """One host finished (any status)."""

    def run_finished(self, result: RunResult, total: int) -> None:
        """No host runs any more; called before the change summary is printed."""


class Console(Protocol):
    """Where the change summary is printed (a rich Console fits)."""

    def print(self, *objects: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True)
class ReportSpec:
    """One `--report FORMAT:PATH`."""

    format: str
    path: Path


@dataclass
class RunOptions:
    """How to run a fleet check. Defaults suit a library caller: nothing written unless asked."""

    limit: str | None = None
    forks: int = 50
    #: Per-host deadline in seconds; None: each host's inventory `timeout` (default 120 s).
    timeout: float | None = None
    reports: Sequence[ReportSpec] = ()
    save_facts: Path | None = None
    journal: Path | None = None
    #: SSH host key policy: "default" (~/.ssh/known_hosts), "accept" or a known_hosts file.
    ssh_known_hosts: str = "default"
    #: pypsrp | native: overrides every psrp host's `psrp_client`.
    psrp_client: str | None = None
    history: Path | None = None
    #: Which recorded run the changes compare with: "last" (same scope), a run id, last~N.
    since: str = "last"
    #: Waivers file; None: the inventory's `waivers:` setting, if any.
    waivers: Path | None = None
    mail: MailSettings | None = None
    #: Asks for a password once per username (`--ask-pass`); None: passwords from the inventory/env.
    prompt: Callable[[str], str] | None = None
    progress: ProgressSink | None = None
    console: Console | None = None
    #: Transports by name, replacing the built-in ones (tests, plugins).
    transports: Mapping[str, Transport] | None = None
    #: Stop like Ctrl-C on SIGTERM (only possible in the main thread).
    handle_sigterm: bool = True
    #: Run-time check filters (`--tags`, `--skip-tags`, `--checks`): narrow the playbooks' checks.
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    checks: Sequence[str] = ()
    #: Which hosts fail the run (`fleetcheck.results.exit_code`): any, noncompliant, unreachable.
    fail_on: str = "any"
    #: Broker URL (redis://...): hosts of other sites than `local` go to their site's workers.
    broker: str | None = None
    #: Another dispatch engine instead of Celery (tests, plugins); implies sites like `broker`.
    dispatcher: Dispatcher | None = None
    #: Seconds a site may stay silent before its unstarted hosts end as unreachable.
    site_wait: float = 30.0
    #: Hosts per batch sent to a site's queue.
    batch_size: int = 100
    #: Only this share of the hosts (`--shard K/N`); recorded in the run's scope for `merge`.
    shard: Shard | None = None


@dataclass
class EvaluateOptions:
    """How to judge saved facts again: reports, waivers, and where the summary goes."""

    reports: Sequence[ReportSpec] = ()
    waivers: Path | None = None
    console: Console | None = None


@dataclass
class RunOutcome:
    """What a run produced. `run` has waivers applied: it is what reports and `exit_code` use."""

    run: RunResult
    exit_code: int
    total_hosts: int
    context: ReportContext
    changes: ChangeSet | None = None
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    #: Problems that did not stop the run (history, mail, a report that could not be written).
    errors: list[str] = field(default_factory=list)
    report_errors: list[str] = field(default_factory=list)
    #: The inventory's warnings (unknown keys, deprecated settings...).
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs


def load_inventory(
    name: str | Path | Sequence[str | Path],
    *,
    vault_password_files: Sequence[str | Path] = (),
    vault_prompt: Callable[[str], str] | None = None,
) -> Inventory:
    """An inventory by path, or by name in ./ then inventories/ (warnings on `.warnings`).

    Several names are several Ansible sources read as one inventory, as `ansible -i a -i b`.
    Vault passwords come from the files given (`id@FILE` allowed), else
    ANSIBLE_VAULT_PASSWORD_FILE, plus one prompt when `vault_prompt` is given.
    """
    from fleetcheck.inventory import find_inventory
    from fleetcheck.inventory import load_inventory as load
    from fleetcheck.inventory.vault import VaultError, vault_secrets

    names = [name] if isinstance(name, str | Path) else list(name)
    if not names:
        raise UserError("no inventory given: name one, as in `fleetcheck run INVENTORY` or `-i INVENTORY`")
    try:
        secrets = vault_secrets([str(f) for f in vault_password_files], ask=vault_prompt is not None, prompt=vault_prompt)
    except VaultError as exc:
        raise UserError(str(exc)) from None
    return load([find_inventory(str(n)) for n in names], secrets=secrets, vault_files=[str(f) for f in vault_password_files])


def load_playbooks(names: Sequence[str | Path | Playbook]) -> list[Playbook]:
    """Built-in playbooks by name, playbook files by path; loaded ones pass through."""
    from fleetcheck.playbook import Playbook, load_playbook

    return [p if isinstance(p, Playbook) else load_playbook(p) for p in names]


def parse_report_specs(specs: Sequence[str]) -> list[ReportSpec]:
    """Parse `FORMAT:PATH` values and make sure each can be written, before any host is contacted."""
    from fleetcheck.reports.base import parse_report_spec

    parsed = [ReportSpec(*parse_report_spec(s)) for s in specs]
    for spec in parsed:
        fmt, path = spec.format, spec.path
        if path.is_dir():
            raise UserError(f"--report {fmt}:{path}: is a folder; give a file name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--report {fmt}:{path}: cannot create {path.parent} ({exc.strerror})") from None
        if not os.access(path.parent, os.W_OK):
            raise UserError(f"--report {fmt}:{path}: {path.parent} is not writable")
    return parsed


def default_journal_path() -> Path:
    """Every CLI run journals somewhere, so a killed run keeps what it collected."""
    import platformdirs

    return Path(platformdirs.user_state_dir("fleetcheck", appauthor=False)) / "journal.jsonl"


def prepare_journal(path: Path) -> Path:
    """Create the folder; keep the journal bounded by moving a big one aside (one old copy)."""
    if path.is_dir():
        raise UserError(f"--journal {path}: is a folder; give a file name, e.g. {path / 'journal.jsonl'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size > JOURNAL_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError as exc:
        raise UserError(f"--journal {path}: cannot use it ({exc.strerror})") from None
    return path


def run_scope(inventory: Path, limit: str | None) -> str:
    """What a run covered, as recorded in reports and history: the nightly baseline is the
    previous run of the same scope, so a `--limit` run or a second inventory sharing the
    history never shows the other hosts as "disappeared"."""
    scope = str(inventory.resolve())
    return f"{scope} --limit {limit}" if limit else scope


def _nightly(history: Path | None, since: str, waivers: Path | None, mail: MailSettings | None) -> NightlyOptions:
    from fleetcheck import nightly

    opts = nightly.NightlyOptions(history_path=history, since=since, waivers_path=waivers, mail=mail)
    return nightly.prepare(opts)


# --------------------------------------------------------------------------- run


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
    from fleetcheck import nightly
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
    with nightly.run_guard(opts):
        if options.progress is not None:
            options.progress.run_started(len(hosts))
            plan = getattr(options.progress, "plan", None)
            if plan is not None:  # sinks that show each running host's time against its deadline
                plan({h.name: options.timeout or h.timeout for h in hosts})
        result = _run_fleet(hosts, loaded, names, scope, options)
        if options.progress is not None:
            options.progress.run_finished(result, len(hosts))
        outcome = _finish(result, len(hosts), opts, options.reports, options.console, options.fail_on)
    outcome.warnings = list(inv.warnings)
    return outcome


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


def _run_fleet(
    hosts: list[Host], playbooks: list[Playbook], names: list[str], scope: str, options: RunOptions
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
            asyncio.run(main())
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
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], RUN_GC_THRESHOLD0), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def _finish(
    result: RunResult, total: int, opts: NightlyOptions | None, reports: Sequence[ReportSpec], console: Console | None,
    fail_on: str = "any",
) -> RunOutcome:
    """Waivers, history, changes, mail (fleetcheck.nightly), then the reports and the exit code."""
    from fleetcheck import nightly
    from fleetcheck.reports.base import ReportContext

    outcome = RunOutcome(run=result, exit_code=EXIT_OK, total_hosts=total, context=ReportContext())
    if opts is not None:
        done = nightly.finish_run(result, opts, console)
        outcome.run, outcome.context, outcome.changes = done.run, done.context, done.changes
        outcome.summary, outcome.notes, outcome.errors = done.summary, done.notes, done.errors
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


# --------------------------------------------------------------------------- shard parts


@dataclass
class MergeOptions:
    """How to record merged shard parts: history, reports, and where the summary goes."""

    history: Path | None = None
    since: str = "last"
    reports: Sequence[ReportSpec] = ()
    mail: MailSettings | None = None
    console: Console | None = None


def merge_parts(paths: Sequence[Path], options: MergeOptions | None = None) -> RunOutcome:
    """The json reports of `run --shard K/N` as one run: history, changes, reports, exit code.

    Waivers were applied by each part; they are not applied again.
    """
    from fleetcheck import nightly
    from fleetcheck.dispatch.merge import as_part, merge_results

    options = options or MergeOptions()
    result = merge_results([as_part(path, load_results(path)) for path in paths])
    opts = _nightly(options.history, options.since, None, options.mail)
    with nightly.run_guard(opts):
        return _finish(result, len(result.hosts), opts, options.reports, options.console)


# --------------------------------------------------------------------------- saved facts


def evaluate_saved(
    facts_dir: Path, playbooks: Sequence[str | Path | Playbook] = (), options: EvaluateOptions | None = None
) -> RunOutcome:
    """Judge facts saved by `run --save-facts DIR` again: same rules and waivers, no network."""
    options = options or EvaluateOptions()
    names = [str(getattr(p, "name", p)) for p in playbooks] or [DEFAULT_PLAYBOOK]
    loaded = load_playbooks(list(playbooks) or names)
    opts = _nightly(None, "last", options.waivers, None) if options.waivers is not None else None
    result = _evaluate_dir(facts_dir, loaded, names)
    return _finish(result, len(result.hosts), opts, options.reports, options.console)


def _evaluate_dir(facts_dir: Path, playbooks: list[Playbook], names: list[str]) -> RunResult:
    from pydantic import ValidationError

    from fleetcheck.facts import FactsDocument
    from fleetcheck.runner import judge_output
    from fleetcheck.transports.base import ScriptOutput

    if not facts_dir.is_dir():
        raise UserError(f"{facts_dir}: not a folder of saved facts (write one with run --save-facts DIR)")
    files = sorted(p for p in facts_dir.glob("*.json") if p.is_file())
    if not files:
        raise UserError(f"{facts_dir}: no *.json facts files (write them with run --save-facts DIR)")
    started = datetime.now(UTC)
    hosts: list[HostResult] = []
    for path in files:
        try:
            if path.stat().st_size > MAX_FACTS_BYTES:
                raise UserError(f"{path}: larger than {MAX_FACTS_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
            facts = FactsDocument.model_validate_json(text)
        except (ValidationError, ValueError) as exc:
            raise UserError(f"{path}: not a fleetcheck facts document ({' '.join(str(exc).split())[:200]})") from None
        # the same judgement as `run`, as of when the facts were collected
        status, message, checks, _, error_type = judge_output(
            None, ScriptOutput(stdout=text), playbooks, _collected_at(facts) or started
        )
        hosts.append(
            HostResult(
                host=facts.inventory_name or urllib.parse.unquote(path.stem), address=facts.host.computer_name, status=status, message=message,
                error_type=error_type, checks=checks,
            )
        )
    return RunResult(
        run_id="evaluate-" + started.strftime("%Y%m%dT%H%M%SZ"),
        started_at=started,
        finished_at=datetime.now(UTC),
        inventory=str(facts_dir),
        playbooks=names,
        check_ids=list(dict.fromkeys(c.check_id for h in hosts for c in h.checks)),
        hosts=hosts,
        fleetcheck_version=__version__,
    )


def _collected_at(facts: FactsDocument) -> datetime | None:
    """Judge time-based rules as of the scan (the scanner's clock), not today.

    Older facts files without `scanned_at` fall back to the host's own clock, which hides
    clock skew: better than judging yesterday's facts against today's date."""
    try:
        stamp = datetime.fromisoformat(str(facts.scanned_at or facts.host.collected_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def load_results(path: Path) -> RunResult:
    """A json report, or a journal (JSON lines) from an interrupted or crashed run."""
    from fleetcheck.reports import json as json_report

    if path.suffix in (".jsonl", ".journal"):
        from fleetcheck.journal import read_journal

        try:
            return read_journal(path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable fleetcheck journal ({exc})") from None
    return json_report.load(path)


# --------------------------------------------------------------------------- process exit


def stop_workers(grace: float = EXIT_GRACE_S) -> int:
    """Give transport worker threads up to `grace` seconds to close their remote shells.

    Returns how many still run: a thread stuck in a hung read would only delay the process's
    exit by up to its host's deadline, so the caller may leave without waiting for it.
    """
    from fleetcheck import transports

    return transports.stop_workers(grace)


# --------------------------------------------------------------------------- fix


def fix(inventory: str | Path, playbooks: Sequence[str | Path], request: FixRequest) -> FixOutcome:
    """`fleetcheck fix`: load and validate the inputs, plan from a scan, and with `request.apply`
    apply in batches, re-check and write the audit trail (fleetcheck/fix.py has the rules).

    Ctrl-C and SIGTERM stop between batches: the running batch ends, no later batch starts.
    Raises a UserError before any host is contacted when an input is wrong."""
    from fleetcheck import fix as fixing
    from fleetcheck import runner
    from fleetcheck.checks.registry import CHECKS
    from fleetcheck.inventory import apply_limit, load_credentials

    inv = load_inventory(inventory)
    hosts = apply_limit(inv.hosts, inv.groups, request.limit)
    only = set(request.checks) if request.checks else None
    unknown = sorted((only or set()) - set(CHECKS))
    if unknown:
        raise fixing.FixUsageError(f"--checks: unknown check id(s) {', '.join(unknown)}; `fleetcheck checks --all` lists them")
    pbs = load_playbooks(list(playbooks or inv.playbooks or [DEFAULT_PLAYBOOK]))
    waive = fixing.waiver_filter(request.waivers or inv.waivers)
    hosts = load_credentials(hosts, ask_pass=request.ask_pass is not None, prompt=request.ask_pass)
    record = None
    if request.history is not None:
        history = request.history

        def record(result: fixing.FixResult, fixes: list[fixing.HostFix]) -> None:
            from fleetcheck import fixlog

            fixlog.record_batch(history, result, fixes)

    options = fixing.FixOptions(
        run=runner.RunOptions(forks=request.forks, timeout=request.timeout, journal=None,
                              inventory=run_scope(inv.path, request.limit), ssh_known_hosts=request.ssh_known_hosts,
                              transports=request.transports),
        checks=only, apply=request.apply, serial=request.serial, max_fail_percent=request.max_fail_percent,
        waive=waive, confirm=request.confirm, on_batch=request.on_batch, record=record, progress=request.progress,
    )
    result = fixing.drive(hosts, pbs, options, request.on_stop_requested)
    return fixing.FixOutcome(result, exit_code(result.final() if request.apply else result.scan))
