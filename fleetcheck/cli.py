"""The `fleetcheck` command line (typer). Thin: parse, load, call the runner, print, set the exit code.

Every known mistake (bad inventory, unknown playbook or check, unusable report path) is caught
here and printed as one paragraph with exit code 2; nothing a user can type produces a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from fleetcheck import __version__
from fleetcheck.results import UNCHECKED_STATUSES, HostResult, HostStatus, RunResult

EXIT_OK = 0
EXIT_NONCOMPLIANT = 1
EXIT_USAGE = 2
EXIT_UNCHECKED = 3
EXIT_INTERNAL = 4
DEFAULT_PLAYBOOK = "system-state-backup"

EXIT_CODES_HELP = """\b
Exit codes:
  0  every host was checked and is compliant
  1  at least one check failed (and every host was checked)
  2  usage or configuration error (bad inventory, unknown playbook or check, bad option)
  3  at least one host could not be checked (unreachable, auth_failed, timeout,
     protocol_error, unsupported); takes precedence over 1
  4  interrupted (Ctrl-C, SIGTERM) or internal error
"""

APP_HELP = f"""
Check a fleet of Windows servers against a troubleshooting playbook, over PowerShell
Remoting, in one round trip per host, and print one compliance table for the fleet.

\b
Examples:
  fleetcheck run prod.yml                       # ./prod.yml or inventories/prod.yml
  fleetcheck run prod.yml --limit 'web*:!web07' # like Ansible's --limit
  fleetcheck run prod.yml --report json:out/run.json --report junit:out/junit.xml
  fleetcheck inventory prod.yml                 # what resolves, passwords redacted
  fleetcheck checks                             # the checks of the default playbook
  fleetcheck explain CHECK_ID                   # what a check looks at and how to fix it
  fleetcheck report out/run.json --format markdown -o out/run.md
  fleetcheck lab serve --hosts 50               # a simulated Windows fleet on loopback
{EXIT_CODES_HELP}"""

app = typer.Typer(
    help=APP_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageError(Exception):
    """A user-fixable problem: printed as one paragraph, exit code 2."""


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    _err(f"fleetcheck: {message}")
    raise typer.Exit(code)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Known error types -> one paragraph and exit 2, never a traceback."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, _known_errors()):
            _fail(str(exc))
        raise


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is written for the user (imported only when something failed)."""
    from fleetcheck.history import HistoryError
    from fleetcheck.inventory.errors import InventoryError
    from fleetcheck.inventory.limit import LimitError
    from fleetcheck.nightly import NightlyConfigError
    from fleetcheck.playbook import PlaybookError
    from fleetcheck.reports.base import ReportSpecError
    from fleetcheck.reports.json import ResultsFileError
    from fleetcheck.waivers import WaiverFileError

    return (
        UsageError, InventoryError, LimitError, ReportSpecError, ResultsFileError, PlaybookError,
        WaiverFileError, HistoryError, NightlyConfigError,
    )


def exit_code_for(result: RunResult) -> int:
    """3 beats 1: a host we could not check hides what it would have said."""
    if result.interrupted:
        return EXIT_INTERNAL
    if any(h.status in UNCHECKED_STATUSES for h in result.hosts):
        return EXIT_UNCHECKED
    if any(h.status == HostStatus.NONCOMPLIANT for h in result.hosts):
        return EXIT_NONCOMPLIANT
    return EXIT_OK


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fleetcheck {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Fleet-wide compliance checks for Windows servers over PowerShell Remoting."""


# --------------------------------------------------------------------------- inventory


def _load_inventory(name: str) -> Any:
    from fleetcheck.inventory import find_inventory, load_inventory

    inv = load_inventory(find_inventory(name))
    for warning in inv.warnings:
        _err(f"warning: {warning}")
    return inv


@app.command("inventory")
def inventory_cmd(
    inventory: Annotated[str, typer.Argument(metavar="INVENTORY", help="Inventory file (native or Ansible YAML).")],
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", help="Host pattern, as for `run`.")] = None,
) -> None:
    """Show the hosts, groups and effective settings an inventory resolves to (passwords redacted).

    \b
    Examples:
      fleetcheck inventory inventories/lab.yml
      fleetcheck inventory prod.yml --limit 'datacenter-a:&web'
    """
    from fleetcheck.inventory import apply_limit
    from fleetcheck.inventory.show import render_inventory

    with _user_errors():
        inv = _load_inventory(inventory)
        hosts = apply_limit(inv.hosts, inv.groups, limit)
        typer.echo(render_inventory(inv, hosts), nl=False)


# --------------------------------------------------------------------------- playbooks and checks


def _load_playbooks(names: list[str]) -> list[Any]:
    from fleetcheck.playbook import load_playbook

    return [load_playbook(name) for name in names]


@app.command("checks")
def checks_cmd(
    playbook: Annotated[
        list[str] | None, typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Playbook name or path (repeatable).")
    ] = None,
    all_checks: Annotated[bool, typer.Option("--all", help="Every built-in check, not only a playbook's.")] = False,
) -> None:
    """List the checks of a playbook (default: the System State Backup playbook).

    \b
    Examples:
      fleetcheck checks
      fleetcheck checks -p my-playbook.yml
      fleetcheck checks --all
    """
    with _user_errors():
        from fleetcheck.checks import render_checks_table

        playbooks = [] if all_checks else _load_playbooks(playbook or [DEFAULT_PLAYBOOK])
        typer.echo(render_checks_table(playbooks))


@app.command("explain")
def explain_cmd(
    check_id: Annotated[str, typer.Argument(metavar="CHECK_ID", help="A check id, as `fleetcheck checks` lists them.")],
    playbook: Annotated[
        list[str] | None, typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Whose remedy settings to show.")
    ] = None,
) -> None:
    """Explain one check: what it verifies, why it matters, how to fix a failure, its parameters,
    and the automatic fix of `fleetcheck fix` (whether the playbook enables it).

    \b
    Example:
      fleetcheck explain vss-writers
    """
    with _user_errors():
        from fleetcheck.checks import render_explain
        from fleetcheck.remedies.explain import render_remedy

        try:
            typer.echo(render_explain(check_id), nl=False)
        except KeyError as exc:
            raise UsageError(str(exc.args[0]) if exc.args else f"unknown check id {check_id!r}") from None
        typer.echo(render_remedy(check_id, _load_playbooks(playbook or [DEFAULT_PLAYBOOK])), nl=False)


# --------------------------------------------------------------------------- reports


def _write_reports(result: RunResult, specs: list[tuple[str, Path]], context: Any = None) -> list[str]:
    """Write every requested report; one failing writer does not stop the others."""
    from fleetcheck.reports.base import ReportContext, get_writer

    problems: list[str] = []
    for fmt, path in specs:
        try:
            get_writer(fmt)(result, path, context or ReportContext())
        except (OSError, ImportError, AttributeError) as exc:
            problems.append(f"{fmt} report {path}: {exc}")
    return problems


def _parse_specs(specs: list[str] | None) -> list[tuple[str, Path]]:
    """Parse `--report` values and make sure each can be written, before any host is contacted."""
    from fleetcheck.reports.base import parse_report_spec

    parsed = [parse_report_spec(s) for s in specs or []]
    for fmt, path in parsed:
        if path.is_dir():
            raise UsageError(f"--report {fmt}:{path}: is a folder; give a file name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--report {fmt}:{path}: cannot create {path.parent} ({exc.strerror})") from None
        if not os.access(path.parent, os.W_OK):
            raise UsageError(f"--report {fmt}:{path}: {path.parent} is not writable")
    return parsed


JOURNAL_ROTATE_BYTES = 50 * 1024 * 1024


def default_journal_path() -> Path:
    """Every run journals somewhere, so a killed run keeps what it collected."""
    import platformdirs

    return Path(platformdirs.user_state_dir("fleetcheck", appauthor=False)) / "journal.jsonl"


def _prepare_journal(path: Path) -> Path:
    """Create the folder; keep the journal bounded by moving a big one aside (one old copy)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size > JOURNAL_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError as exc:
        raise UsageError(f"--journal {path}: cannot use it ({exc.strerror})") from None
    return path


@app.command("report")
def report_cmd(
    results: Annotated[
        Path,
        typer.Argument(metavar="RESULTS", help="A json report (`run --report json:PATH`) or a run journal (`--journal`)."),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json, csv, junit, markdown, html, prometheus.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="PATH", help="Write here (default: stdout).")] = None,
    view: Annotated[str, typer.Option("--view", metavar="VIEW", help="table only: full, hosts, checks or summary.")] = "full",
    wide: Annotated[bool, typer.Option("--wide", help="table only: no truncation.")] = False,
) -> None:
    """Render saved results again in another format, without touching the network.

    \b
    Examples:
      fleetcheck report out/run.json --format table --view checks
      fleetcheck report out/run.json --format junit -o out/junit.xml
    """
    from fleetcheck.reports.base import WRITERS, ReportContext, get_writer, write_atomic

    with _user_errors():
        result = _load_results(results)
        fmt = fmt.lower()
        if fmt == "table":
            text = _render_table(result, view, wide)
        elif fmt not in WRITERS:
            raise UsageError(f"unknown format '{fmt}'; known: table, {', '.join(sorted(WRITERS))}")
        elif output is not None:
            get_writer(fmt)(result, output, ReportContext())
            return
        else:
            module = __import__(WRITERS[fmt].partition(":")[0], fromlist=["render"])
            if not hasattr(module, "render"):
                raise UsageError(f"format '{fmt}' writes files only; add -o PATH")
            takes_context = len(inspect.signature(module.render).parameters) > 1
            text = module.render(result, ReportContext()) if takes_context else module.render(result)
        if output is not None:
            write_atomic(output, text)
        else:
            typer.echo(text, nl=False)


def _load_results(path: Path) -> RunResult:
    """A json report, or a journal (JSON lines) from an interrupted or crashed run."""
    from fleetcheck.reports import json as json_report

    if path.suffix in (".jsonl", ".journal"):
        from fleetcheck.journal import read_journal

        try:
            return read_journal(path)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not a readable fleetcheck journal ({exc})") from None
    return json_report.load(path)


def _render_table(result: RunResult, view: str, wide: bool) -> str:
    from fleetcheck.reports.table import TableOptions, render_table

    if view not in ("full", "hosts", "checks", "summary"):
        raise UsageError(f"--view '{view}': expected full, hosts, checks or summary")
    ascii_only = (sys.stdout.encoding or "").lower().replace("-", "") not in ("utf8", "utf16", "utf32")
    return render_table(result, TableOptions(view=view, wide=wide, ascii=ascii_only))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """Counts hosts as they finish; draws a rich bar on a TTY, plain lines otherwise (cron)."""

    total: int
    mode: str  # "bar" | "lines" | "quiet"
    done: list[HostResult] = field(default_factory=list)
    _bar: Any = None
    _task: Any = None

    def __enter__(self) -> Progress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("checking"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("hosts · {task.fields[failures]} failing/unreachable"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("run", total=self.total, failures=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar before the table is printed."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    @property
    def failures(self) -> int:
        return sum(1 for h in self.done if h.status != HostStatus.COMPLIANT)

    def host_done(self, host: HostResult) -> None:
        self.done.append(host)
        if self._bar is not None:
            self._bar.update(self._task, completed=len(self.done), failures=self.failures)
        elif self.mode == "lines":
            detail = f" - {host.message}" if host.message and host.status != HostStatus.COMPLIANT else ""
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            _err(f"{stamp} [{len(self.done)}/{self.total}] {host.host}: {host.status.value}{detail}")


# --------------------------------------------------------------------------- run


#: Young-generation threshold during a run (CPython's default is 700): a 1,000-host run
#: allocates millions of short-lived objects; collecting every 700 of them, and promoting
#: what survives into ever larger full collections of the growing results, cost ~0.6 s of
#: event-loop time per 1,000 hosts. Cyclic garbage waits a little longer, bounded by this count.
RUN_GC_THRESHOLD0 = 20_000


@contextlib.contextmanager
def _run_gc() -> Iterator[None]:
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


def _run_fleet(hosts: list[Any], playbooks: list[Any], settings: dict[str, Any], progress: Progress) -> RunResult:
    """Drive the runner in an event loop; SIGTERM stops like Ctrl-C (partial results, exit 4)."""
    from fleetcheck import runner

    def on_event(event: Any) -> None:
        if event.kind == "host_finished" and event.result is not None:
            progress.host_done(event.result)

    # The result leaves through a holder, not as the main task's result: on its way out,
    # asyncio.run (3.11) formats repr() of the finished task, i.e. of the whole RunResult
    # (~0.3 s per 1,000 hosts).
    holder: list[RunResult] = []

    async def main() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        options = runner.RunOptions(**settings, on_event=on_event, stop=stop)
        try:
            holder.append(await runner.run_fleet(hosts, playbooks, options))
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    asyncio.run(main())
    return holder[0]


def run_scope(inventory: Path, limit: str | None) -> str:
    """What a run covered, as recorded in reports and history: the nightly baseline is the
    previous run of the same scope, so a `--limit` run or a second inventory sharing the
    history never shows the other hosts as "disappeared"."""
    scope = str(inventory.resolve())
    return f"{scope} --limit {limit}" if limit else scope


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


def _playbook_names(cli: list[str] | None, inventory_playbooks: list[str]) -> list[str]:
    return list(cli or inventory_playbooks or [DEFAULT_PLAYBOOK])


@app.command("run", epilog=EXIT_CODES_HELP)
def run_cmd(
    inventory: Annotated[str, typer.Argument(metavar="INVENTORY", help="Inventory file: ./NAME, then inventories/NAME.")],
    playbook: Annotated[
        list[str] | None,
        typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Playbook name or path (repeatable; default: the inventory's, "
                     "else system-state-backup)."),
    ] = None,
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", help="Hosts: names, globs, groups, !x, a:b.")] = None,
    forks: Annotated[int, typer.Option("--forks", metavar="N", min=1, max=1000, help="Hosts checked at the same time.")] = 50,
    timeout: Annotated[
        float | None, typer.Option("--timeout", metavar="SECONDS", min=1, max=3600, help="Per-host deadline in seconds [default: 120].")
    ] = None,
    report: Annotated[
        list[str] | None,
        typer.Option("--report", "-r", metavar="FORMAT:PATH", help="FORMAT:PATH, repeatable; json, csv, junit, markdown, html, prometheus."),
    ] = None,
    view: Annotated[str, typer.Option("--view", metavar="VIEW", help="Terminal output: full, hosts, checks or summary.")] = "full",
    wide: Annotated[bool, typer.Option("--wide", help="Show every host and full messages.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no table: the change-count line (with history) and the summary line only.")] = False,
    save_facts: Annotated[Path | None, typer.Option("--save-facts", metavar="DIR", help="Store each host's facts here.")] = None,
    journal: Annotated[
        Path | None,
        typer.Option("--journal", metavar="PATH", help="Append each host's result here as it finishes (JSON lines; "
                     "default: the user's state folder, e.g. ~/.local/state/fleetcheck/journal.jsonl)."),
    ] = None,
    ask_pass: Annotated[bool, typer.Option("--ask-pass", "-k", help="Prompt once per username.")] = False,
    ssh_known_hosts: Annotated[
        str, typer.Option("--ssh-known-hosts", metavar="default|accept|FILE",
                          help="SSH host key policy (a host's ssh_known_hosts setting wins).")
    ] = "default",
    psrp_client: Annotated[
        str | None, typer.Option("--psrp-client", metavar="pypsrp|native",
                                 help="PSRP client for psrp hosts, overriding their psrp_client setting: pypsrp "
                                      "(threads, the default) or native (asyncio, less CPU per host).")
    ] = None,
    history: Annotated[Path | None, typer.Option("--history", metavar="PATH", help="SQLite history file.")] = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not record this run.")] = False,
    since: Annotated[str | None, typer.Option("--since", metavar="last", help="Compare with a previous run: 'last'.")] = None,
    waivers: Annotated[Path | None, typer.Option("--waivers", metavar="FILE", help="Waivers YAML file.")] = None,
    mail_to: Annotated[str | None, typer.Option("--mail-to", metavar="ADDR", help="ADDR[,ADDR]: mail the change summary.")] = None,
    smtp: Annotated[str | None, typer.Option("--smtp", metavar="HOST[:PORT]", help="HOST[:PORT] of the mail relay.")] = None,
    mail_always: Annotated[bool, typer.Option("--mail-always", help="Mail even when nothing changed.")] = False,
) -> None:
    """Check every host of an inventory and print the fleet's compliance table.

    \b
    Examples:
      fleetcheck run prod.yml
      fleetcheck run prod.yml -p system-state-backup --limit 'dc-*' --forks 100
      fleetcheck run prod.yml --quiet --report json:/var/lib/fleetcheck/last.json
    """
    from fleetcheck.inventory import apply_limit, load_credentials

    with _user_errors():
        inv = _load_inventory(inventory)
        hosts = apply_limit(inv.hosts, inv.groups, limit)
        specs = _parse_specs(report)
        if view not in ("full", "hosts", "checks", "summary"):
            raise UsageError(f"--view '{view}': expected full, hosts, checks or summary")
        if psrp_client not in (None, "pypsrp", "native"):
            raise UsageError(f"--psrp-client '{psrp_client}': expected pypsrp or native")
        names = _playbook_names(playbook, inv.playbooks)
        playbooks = _load_playbooks(names)
        hosts = load_credentials(hosts, ask_pass=ask_pass, prompt=getpass.getpass if ask_pass else None)
        opts = _nightly_options(history, no_history, since, waivers or inv.waivers, mail_to, smtp, mail_always)
        settings = {
            "forks": forks,
            "timeout": timeout,  # None: each host's inventory timeout (default 120 s)
            "journal": _prepare_journal(journal or default_journal_path()),
            "save_facts": save_facts,
            "inventory": run_scope(inv.path, limit),
            "ssh_known_hosts": ssh_known_hosts,
            "psrp_client": psrp_client,
        }
    mode = "quiet" if quiet else ("bar" if sys.stderr.isatty() else "lines")
    from fleetcheck import nightly

    started = datetime.now(UTC)
    with _user_errors(), nightly.run_guard(opts), Progress(total=len(hosts), mode=mode) as progress:
        try:
            with _run_gc():
                result = _run_fleet(hosts, playbooks, settings, progress)
        except KeyboardInterrupt:  # a second Ctrl-C while hosts were closing
            result = _partial_result(run_scope(inv.path, limit), names, progress.done, started)
        if result.interrupted:
            _err(f"fleetcheck: interrupted; {len(result.hosts)} of {len(hosts)} hosts finished")
        progress.close()
        _finish(result, specs, opts, view=view, wide=wide, quiet=quiet)


def _nightly_options(
    history: Path | None, no_history: bool, since: str | None, waivers: Path | None,
    mail_to: str | None, smtp: str | None, mail_always: bool,
) -> Any:
    """History, changes, waivers and mail (fleetcheck.nightly), validated before any connection."""
    from fleetcheck import nightly

    if no_history and since:
        raise UsageError("--since compares with recorded runs; it cannot be used with --no-history")
    opts = nightly.NightlyOptions(
        history_path=None if no_history else (history or nightly.default_history_path()),
        since=since or "last",
        waivers_path=waivers,
        mail=nightly.mail_settings(mail_to, smtp, always=mail_always),
    )
    return nightly.prepare(opts)


def _finish(result: RunResult, specs: list[tuple[str, Path]], opts: Any, *, view: str, wide: bool,
            quiet: bool) -> NoReturn:
    """Nightly steps (waivers, history, changes, mail), then table, reports and the exit code."""
    from rich.console import Console

    context = None
    if opts is not None:
        from fleetcheck import nightly

        outcome = nightly.finish_run(result, opts, None if quiet else Console(highlight=False, soft_wrap=True))
        result, context = outcome.run, outcome.context
        if quiet:
            for error in outcome.errors:
                _err(f"warning: {error}")
            if outcome.changes is not None and outcome.summary:
                # cron logs keep the one line that matters most: what changed since last night
                typer.echo(outcome.summary.splitlines()[0])
        if not quiet and outcome.summary:
            typer.echo("")
    typer.echo(_render_table(result, "summary" if quiet else view, wide), nl=False)
    problems = _write_reports(result, specs, context)
    for problem in problems:
        _err(f"fleetcheck: could not write {problem}")
    code = exit_code_for(result)
    if problems and code == EXIT_OK:
        code = EXIT_INTERNAL
    raise typer.Exit(code)


# --------------------------------------------------------------------------- evaluate saved facts


@app.command("evaluate")
def evaluate_cmd(
    facts_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A folder written by `run --save-facts DIR`.")],
    playbook: Annotated[
        list[str] | None, typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Playbook name or path (repeatable).")
    ] = None,
    report: Annotated[list[str] | None, typer.Option("--report", "-r", metavar="FORMAT:PATH", help="FORMAT:PATH, repeatable.")] = None,
    view: Annotated[str, typer.Option("--view", metavar="VIEW", help="full, hosts, checks or summary.")] = "full",
    wide: Annotated[bool, typer.Option("--wide", help="Show every host and full messages.")] = False,
) -> None:
    """Evaluate saved facts against a playbook again, without touching the network.

    \b
    Example:
      fleetcheck run prod.yml --save-facts facts/ && fleetcheck evaluate facts/ -p my-playbook.yml
    """
    with _user_errors():
        specs = _parse_specs(report)
        names = list(playbook or [DEFAULT_PLAYBOOK])
        playbooks = _load_playbooks(names)
        result = _evaluate_dir(facts_dir, playbooks, names)
    _finish(result, specs, None, view=view, wide=wide, quiet=False)


MAX_FACTS_BYTES = 50 * 1024 * 1024


def _evaluate_dir(facts_dir: Path, playbooks: list[Any], names: list[str]) -> RunResult:
    """Judge every saved facts document again: same rules as `run`, no network."""
    from pydantic import ValidationError

    from fleetcheck.facts import FactsDocument
    from fleetcheck.runner import judge_output
    from fleetcheck.transports.base import ScriptOutput

    if not facts_dir.is_dir():
        raise UsageError(f"{facts_dir}: not a folder of saved facts (write one with run --save-facts DIR)")
    files = sorted(p for p in facts_dir.glob("*.json") if p.is_file())
    if not files:
        raise UsageError(f"{facts_dir}: no *.json facts files (write them with run --save-facts DIR)")
    started = datetime.now(UTC)
    hosts: list[HostResult] = []
    for path in files:
        try:
            if path.stat().st_size > MAX_FACTS_BYTES:
                raise UsageError(f"{path}: larger than {MAX_FACTS_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
            facts = FactsDocument.model_validate_json(text)
        except (ValidationError, ValueError) as exc:
            raise UsageError(f"{path}: not a fleetcheck facts document ({' '.join(str(exc).split())[:200]})") from None
        # the same judgement as `run`, as of when the facts were collected
        status, message, checks, _, error_type = judge_output(
            None, ScriptOutput(stdout=text), playbooks, _collected_at(facts) or started
        )
        hosts.append(
            HostResult(
                host=path.stem, address=facts.host.computer_name, status=status, message=message,
                error_type=error_type, checks=checks,
            )
        )
    check_ids = list(dict.fromkeys(c.check_id for h in hosts for c in h.checks))
    return RunResult(
        run_id="evaluate-" + started.strftime("%Y%m%dT%H%M%SZ"),
        started_at=started,
        finished_at=datetime.now(UTC),
        inventory=str(facts_dir),
        playbooks=names,
        check_ids=check_ids,
        hosts=hosts,
        fleetcheck_version=__version__,
    )


def _collected_at(facts: Any) -> datetime | None:
    """Judge time-based rules as of the scan (the scanner's clock), not today.

    Older facts files without `scanned_at` fall back to the host's own clock, which hides
    clock skew: better than judging yesterday's facts against today's date."""
    try:
        stamp = datetime.fromisoformat(str(facts.scanned_at or facts.host.collected_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- diff and lab


@app.command("diff")
def diff_cmd(
    run_a: Annotated[str | None, typer.Argument(metavar="RUN_A", help="Older run (id, prefix, last, last~N).")] = None,
    run_b: Annotated[str | None, typer.Argument(metavar="RUN_B", help="Newer run (default: the latest).")] = None,
    history: Annotated[Path | None, typer.Option("--history", metavar="PATH", help="SQLite history file.")] = None,
    list_runs: Annotated[bool, typer.Option("--list", help="List the recorded runs instead.")] = False,
) -> None:
    """What changed between two recorded runs: new failures, fixed, still failing, hosts gone or new.

    \b
    Examples:
      fleetcheck diff                  # the latest run against the one before
      fleetcheck diff last~7 last      # this week
      fleetcheck diff --list
    """
    with _user_errors():
        from fleetcheck import nightly

        text = nightly.list_runs_text(history) if list_runs else nightly.diff_text(history, run_a, run_b)
        typer.echo(text)


@app.command(
    "lab",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def lab_cmd(ctx: typer.Context) -> None:
    """The simulated Windows fleet on loopback (serve, scenarios); `fleetcheck lab --help`.

    Loaded only when used: the product itself never imports the lab.
    """
    from fleetcheck.lab.cli import lab_app

    command = typer.main.get_command(lab_app)
    code = command.main(args=list(ctx.args), prog_name="fleetcheck lab", standalone_mode=False)
    raise typer.Exit(code if isinstance(code, int) else 0)


# --------------------------------------------------------------------------- entry point


def _register_plugins() -> None:
    from fleetcheck.fixcli import register

    register(app)


_register_plugins()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: exit codes as documented; internal errors never show secrets or tracebacks."""
    from typer import _click

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="fleetcheck", standalone_mode=False)
    except _click.exceptions.ClickException as exc:  # bad option, missing argument...
        exc.show()
        return EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt, EOFError):
        _err("fleetcheck: interrupted")
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence: one paragraph, exit 4
        if os.environ.get("FLEETCHECK_DEBUG"):
            traceback.print_exc()
        _err(f"fleetcheck: internal error ({type(exc).__name__}); set FLEETCHECK_DEBUG=1 for details")
        return EXIT_INTERNAL
    if rv == 130:  # typer's code for Ctrl-C
        _err("fleetcheck: interrupted")
        rv = EXIT_INTERNAL
    code = rv if isinstance(rv, int) else EXIT_OK
    _exit_if_remote_calls_hang(code)
    if argv is None:  # the process's own entry (console script, `python -m`): it exits next
        # Reports, journal and history are closed by now; without this the interpreter's
        # last full collection walks and frees every object of the run (~0.4 s per 1,000
        # hosts) just before the OS reclaims the memory anyway.
        gc.freeze()
    return code


#: After an interrupted run, how long worker threads get to close their remote shells.
EXIT_GRACE_S = 5.0


def _exit_if_remote_calls_hang(code: int) -> None:
    """After an interrupted run, worker threads may still be closing shells, or stuck in a hung read.

    Closing gets a bounded grace (remote shells are a scarce quota on Windows). Reports,
    journal and history are written and closed by now, so a thread still stuck after that
    would only delay the exit by up to the host's deadline: leave without waiting for it.
    """
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in _worker_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    if _worker_threads():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _worker_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon and t.name.startswith("fleetcheck")
    ]
