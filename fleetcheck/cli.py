"""The `fleetcheck` command line (typer): parse the arguments, call `fleetcheck.api`, print, exit.

Every error meant for the user (`fleetcheck.errors.UserError`: bad inventory, unknown playbook
or check, unusable report path...) is printed as one paragraph with exit code 2; nothing a user
can type produces a traceback. Sub-commands of other packages (the lab) are mounted from the
`fleetcheck.commands` entry-point group and imported only when used.
"""

from __future__ import annotations

import gc
import getpass
import os
import sys
import traceback
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from fleetcheck import __version__
from fleetcheck import cli_options as opts
from fleetcheck.cli_lookup import (
    AskVault,
    HistoryPath,
    InventoryArg,
    InventoryOpts,
    ListHosts,
    Playbooks,
    Reports,
    VaultFiles,
    ViewOpt,
    WaiversPath,
    Wide,
    check_view,
    checks_cmd,
    diff_cmd,
    err,
    explain_cmd,
    inventory_cmd,
    load_inventory,
    render_table,
    report_cmd,
    user_errors,
)
from fleetcheck.cli_sites import Broker, Shard, SiteWait, worker_cmd
from fleetcheck.errors import UserError
from fleetcheck.fixcli import FIX_HELP, fix_cmd, history_fixes_cmd
from fleetcheck.results import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from rich.console import Console

    from fleetcheck import api
    from fleetcheck.dispatch.shard import Shard as ShardSpec
    from fleetcheck.inventory import Inventory
    from fleetcheck.mail import MailSettings

EXIT_CODES_HELP = """\b
Exit codes:
  0  every host was checked and is compliant
  1  at least one check failed (and every host was checked)
  2  usage or configuration error (bad inventory, unknown playbook or check, bad option)
  3  at least one host could not be checked (unreachable, auth_failed, timeout,
     protocol_error, unsupported); takes precedence over 1
  4  interrupted (Ctrl-C, SIGTERM) or internal error
  --fail-on noncompliant|unreachable narrows which hosts fail the run.
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
  fleetcheck fix prod.yml                       # plan the fixes for failing checks (--apply to make them)
  fleetcheck report out/run.json --format markdown -o out/run.md
  fleetcheck lab serve --hosts 50               # a simulated Windows fleet on loopback
{EXIT_CODES_HELP}"""

app = typer.Typer(
    help=APP_HELP,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


app.command("inventory")(inventory_cmd)
app.command("config")(opts.config_cmd)
app.command("checks")(checks_cmd)
app.command("explain")(explain_cmd)
app.command("report")(report_cmd)


# --------------------------------------------------------------------------- run


@app.command("run", epilog=EXIT_CODES_HELP)
def run_cmd(
    ctx: typer.Context,
    inventory: InventoryArg = None,
    sources: InventoryOpts = None,
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
    report: Reports = None,
    view: ViewOpt = "full",
    wide: Wide = False,
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
        str | None, typer.Option("--psrp-client", metavar="native|pypsrp",
                                 help="PSRP client for psrp hosts, overriding their psrp_client setting: native "
                                      "(asyncio, the default) or pypsrp (threads).")
    ] = None,
    history: HistoryPath = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not record this run.")] = False,
    since: opts.Since = None,
    waivers: WaiversPath = None,
    mail_to: Annotated[str | None, typer.Option("--mail-to", metavar="ADDR", help="ADDR[,ADDR]: mail the change summary.")] = None,
    smtp: Annotated[str | None, typer.Option("--smtp", metavar="HOST[:PORT]", help="HOST[:PORT] of the mail relay.")] = None,
    smtp_tls: Annotated[str | None, typer.Option("--smtp-tls", metavar="MODE", help="require, starttls or none (default: require when a password is set).")] = None,
    mail_always: Annotated[bool, typer.Option("--mail-always", help="Mail even when nothing changed.")] = False,
    vault_files: VaultFiles = None,
    ask_vault: AskVault = False,
    list_hosts: ListHosts = False,
    show_skipped: Annotated[bool, typer.Option("--show-skipped", help="List the hosts skipped (not Windows remoting) and why.")] = False,
    tags: opts.Tags = None,
    skip_tags: opts.SkipTags = None,
    checks: opts.Checks = None,
    fail_on: opts.FailOn = None,
    verbose: opts.Verbose = 0,
    config: opts.ConfigPath = None,
    broker: Broker = None,
    shard: Shard = None,
    site_wait: SiteWait = 30.0,
) -> None:
    """Check every host of an inventory and print the fleet's compliance table.

    \b
    Examples:
      fleetcheck run prod.yml
      fleetcheck run prod.yml -p system-state-backup --limit 'dc-*' --forks 100
      fleetcheck run prod.yml --quiet --report json:/var/lib/fleetcheck/last.json
      fleetcheck run -i prod.yml --tags wsb --fail-on noncompliant -v
    Options not given here come from fleetcheck.toml (`fleetcheck config` shows them).
    """
    from fleetcheck import api, logsetup
    from fleetcheck.progress import Mode, Progress

    with user_errors():
        v = opts.with_config(ctx, config, {k: x for k, x in locals().items() if k in opts.CONFIGURABLE})
        inv = load_inventory(inventory, sources, vault_files, ask_vault, summary=not show_skipped)
        if show_skipped or list_hosts:
            _list_selection(inv, v["limit"], show_skipped=show_skipped, list_hosts=list_hosts)
        if list_hosts:
            raise typer.Exit(EXIT_OK)
        if not inv.hosts:
            raise UserError(f"no host to check: all {len(inv.skipped)} hosts of the inventory are skipped "
                            "(not Windows remoting); `fleetcheck inventory` shows why")
        opts.require_terminal_for_prompt(ask_pass)
        logsetup.configure(verbose)
        options = api.RunOptions(
            limit=v["limit"],
            forks=v["forks"],
            timeout=v["timeout"],  # None: each host's inventory timeout (default 120 s)
            reports=api.parse_report_specs(v["report"] or []),
            save_facts=v["save_facts"],
            journal=api.prepare_journal(v["journal"] or api.default_journal_path()),
            ssh_known_hosts=v["ssh_known_hosts"],
            psrp_client=v["psrp_client"],
            history=None if v["no_history"] else (v["history"] or _default_history_path()),
            since=v["since"] or "last",
            waivers=v["waivers"],
            mail=_mail_settings(v["mail_to"], v["smtp"], always=v["mail_always"], smtp_tls=smtp_tls),
            prompt=getpass.getpass if ask_pass else None,
            console=None if quiet else _console(),
            tags=v["tags"] or (), skip_tags=v["skip_tags"] or (), checks=v["checks"] or (), fail_on=v["fail_on"] or "any",
            broker=broker,
            site_wait=site_wait,
            shard=_parse_shard(shard) if shard else None,
        )
        view, wide = check_view(v["view"]), v["wide"]
        if v["no_history"] and v["since"]:
            raise UserError("--since compares with recorded runs; it cannot be used with --no-history")
        mode: Mode = "quiet" if quiet else ("bar" if sys.stderr.isatty() else "lines")
        with Progress(mode) as options.progress:
            outcome = api.run(inv, v["playbook"] or [], options)
    _print_outcome(outcome, view="summary" if quiet else view, wide=wide, quiet=quiet)


# Each of these imports only what its option needs: a nightly `run --quiet` starts in
# about half the time when mail, sharding and the rich console are not loaded for nothing.


def _default_history_path() -> Path:
    from fleetcheck.history import default_history_path

    return default_history_path()


def _mail_settings(mail_to: str | None, smtp: str | None, *, always: bool, smtp_tls: str | None) -> MailSettings | None:
    if not mail_to and not smtp:
        return None
    from fleetcheck import nightly

    return nightly.mail_settings(mail_to, smtp, always=always, smtp_tls=smtp_tls)


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _parse_shard(text: str) -> ShardSpec:
    from fleetcheck.dispatch.shard import parse_shard

    return parse_shard(text)


def _list_selection(inv: Inventory, limit: str | None, *, show_skipped: bool, list_hosts: bool) -> None:
    """`--show-skipped`: each skipped host and why (stderr); `--list-hosts`: the selection, as Ansible prints it."""
    from fleetcheck.inventory import apply_limit
    from fleetcheck.inventory.show import render_skipped

    if show_skipped and inv.skipped:
        err(render_skipped(inv.skipped).rstrip())
    if list_hosts:
        hosts = apply_limit(inv.hosts, inv.groups, limit) if inv.hosts or limit else []
        typer.echo(f"  hosts ({len(hosts)}):")
        for host in hosts:
            typer.echo(f"    {host.name}")


def _print_outcome(outcome: api.RunOutcome, *, view: str, wide: bool, quiet: bool) -> NoReturn:
    """The change summary's first line (quiet) or a blank line after it, the table, report problems."""
    if quiet:
        for error in outcome.errors:
            err(f"warning: {error}")
        if outcome.changes is not None and outcome.summary:
            # cron logs keep the one line that matters most: what changed since last night
            typer.echo(outcome.summary.splitlines()[0])
    elif outcome.summary:
        typer.echo("")
    typer.echo(render_table(outcome.run, view, wide), nl=False)
    for problem in outcome.report_errors:
        err(f"fleetcheck: could not write {problem}")
    raise typer.Exit(outcome.exit_code)


# --------------------------------------------------------------------------- evaluate saved facts


@app.command("evaluate")
def evaluate_cmd(
    facts_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A folder written by `run --save-facts DIR`.")],
    playbook: Playbooks = None,
    report: Reports = None,
    view: ViewOpt = "full",
    wide: Wide = False,
    waivers: WaiversPath = None,
) -> None:
    """Evaluate saved facts against a playbook again (with waivers), without touching the network.

    \b
    Example:
      fleetcheck run prod.yml --save-facts facts/ && fleetcheck evaluate facts/ -p my-playbook.yml
    """
    from rich.console import Console

    from fleetcheck import api

    with user_errors():
        check_view(view)
        options = api.EvaluateOptions(
            reports=api.parse_report_specs(report or []), waivers=waivers,
            console=Console(highlight=False, soft_wrap=True),
        )
        outcome = api.evaluate_saved(facts_dir, playbook or [], options)
    _print_outcome(outcome, view=view, wide=wide, quiet=False)


@app.command("merge")
def merge_cmd(
    parts: Annotated[list[Path], typer.Argument(metavar="PART.json...", help="json reports of `run --shard K/N`.")],
    history: HistoryPath = None,
    report: Reports = None,
    view: ViewOpt = "full",
    wide: Wide = False,
) -> None:
    """Combine the json reports of shard runs into one run: one table, history entry and report.

    \b
    Example:
      fleetcheck run prod.yml --shard 2/5 --no-history --report json:part2.json   # on each box
      fleetcheck merge part*.json --history nightly.db --report html:fleet.html
    """
    from rich.console import Console

    from fleetcheck import api

    with user_errors():
        check_view(view)
        options = api.MergeOptions(
            history=history, reports=api.parse_report_specs(report or []),
            console=Console(highlight=False, soft_wrap=True),
        )
        outcome = api.merge_parts(parts, options)
    _print_outcome(outcome, view=view, wide=wide, quiet=False)


# --------------------------------------------------------------------------- diff and plug-in commands


app.command("diff")(diff_cmd)
app.command("worker")(worker_cmd)
app.command("fix", epilog=FIX_HELP)(fix_cmd)
_history = typer.Typer(help="What the history database recorded.", no_args_is_help=True)
_history.command("fixes")(history_fixes_cmd)
app.add_typer(_history, name="history")


def _mount(entry: EntryPoint) -> None:
    """A sub-command another package declares; its module is imported only when it is used."""

    @app.command(
        entry.name,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
        help=f"`fleetcheck {entry.name} --help` (from {entry.value.partition(':')[0]}).",
    )
    def plugin_cmd(ctx: typer.Context) -> None:
        target = entry.load()
        command = typer.main.get_command(target) if isinstance(target, typer.Typer) else target
        code = command.main(args=list(ctx.args), prog_name=f"fleetcheck {entry.name}", standalone_mode=False)
        raise typer.Exit(code if isinstance(code, int) else 0)


for _entry in entry_points(group="fleetcheck.commands"):
    _mount(_entry)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: exit codes as documented; internal errors never show secrets or tracebacks."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="fleetcheck", standalone_mode=False)
    except typer.TyperException as exc:  # bad option, missing argument: Typer's usage errors derive from it
        _show_usage_error(exc)
        return EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt, EOFError):
        err("fleetcheck: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one paragraph, exit 4
        if os.environ.get("FLEETCHECK_DEBUG"):
            traceback.print_exc()
        err(f"fleetcheck: internal error ({type(exc).__name__}); set FLEETCHECK_DEBUG=1 for details")
        return EXIT_INTERRUPTED
    if rv == 130:  # typer's code for Ctrl-C
        err("fleetcheck: interrupted")
        rv = EXIT_INTERRUPTED
    code = rv if isinstance(rv, int) else EXIT_OK
    _exit_when_workers_hang(code)
    if argv is None:  # the process's own entry (console script, `python -m`): it exits next
        # Reports, journal and history are closed by now; without this the interpreter's
        # last full collection walks and frees every object of the run (~0.4 s per 1,000
        # hosts) just before the OS reclaims the memory anyway.
        gc.freeze()
    return code


def _show_usage_error(exc: typer.TyperException) -> None:
    """Typer's own rendering (usage line, hint, "Error: ..."); its usage errors carry a public
    `show()`, the base class only the message."""
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        err(f"Error: {exc.format_message()}")


def _exit_when_workers_hang(code: int) -> None:
    """Worker threads get a bounded grace to close their shells; a hung one does not hold the exit.

    Reports, journal and history are written and closed by now, so a thread still stuck in a
    hung read would only delay the exit by up to its host's deadline.
    """
    from fleetcheck import api

    if api.stop_workers(api.EXIT_GRACE_S):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
