"""The read-only commands of the `fleetcheck` CLI (inventory, checks, explain, report, diff) and
the parse/print helpers every command shares. `fleetcheck.cli` mounts them on its typer app.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn, cast

import typer

from fleetcheck.errors import UserError
from fleetcheck.results import EXIT_USAGE, RunResult

if TYPE_CHECKING:
    from fleetcheck.inventory import Inventory

Playbooks = Annotated[
    list[str] | None, typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Playbook name or path (repeatable).")
]
Reports = Annotated[
    list[str] | None,
    typer.Option("--report", "-r", metavar="FORMAT:PATH", help="FORMAT:PATH, repeatable; json, csv, junit, markdown, html, prometheus, sarif."),
]
ViewOpt = Annotated[str, typer.Option("--view", metavar="VIEW", help="Terminal output: full, hosts, checks or summary.")]
Wide = Annotated[bool, typer.Option("--wide", help="Show every host and full messages.")]
HistoryPath = Annotated[Path | None, typer.Option("--history", metavar="PATH", help="SQLite history file.")]
WaiversPath = Annotated[Path | None, typer.Option("--waivers", metavar="FILE", help="Waivers YAML file.")]
InventoryArg = Annotated[
    str | None, typer.Argument(metavar="INVENTORY", help="Inventory: a file (native, Ansible YAML or INI), a "
                               "directory, or a dynamic source; ./NAME, then inventories/NAME.")
]
InventoryOpts = Annotated[
    list[str] | None, typer.Option("--inventory", "-i", metavar="SOURCE", help="Inventory source, as Ansible's -i (repeatable).")
]
VaultFiles = Annotated[
    list[str] | None, typer.Option("--vault-password-file", metavar="[ID@]FILE",
                                   help="Ansible Vault password file (repeatable; an executable file is run).")
]
AskVault = Annotated[bool, typer.Option("--ask-vault-pass", help="Prompt for the Ansible Vault password.")]
ListHosts = Annotated[bool, typer.Option("--list-hosts", help="Print the names of the hosts selected and stop.")]


def err(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err(f"fleetcheck: {message}")
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Errors written for the user -> one paragraph and exit 2, never a traceback."""
    try:
        yield
    except UserError as exc:
        fail(str(exc))


def load_inventory(
    name: str | None, sources: list[str] | None = None, vault_files: list[str] | None = None,
    ask_vault: bool = False, *, summary: bool = True,
) -> Inventory:
    """The positional INVENTORY and every -i SOURCE as one inventory; warnings (and the skipped
    hosts' one-line summary) go to stderr."""
    import getpass

    from fleetcheck import api

    names = [*([name] if name else []), *(sources or [])]
    inv = api.load_inventory(names, vault_password_files=vault_files or [],
                             vault_prompt=getpass.getpass if ask_vault else None)
    for warning in inv.warnings:
        err(f"warning: {warning}")
    line = None
    if summary and inv.skipped:
        from fleetcheck.inventory.show import skipped_summary

        line = skipped_summary(inv.skipped)
    if line:
        err(line)
    return inv


def inventory_cmd(
    inventory: InventoryArg = None,
    sources: InventoryOpts = None,
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", help="Host pattern, as for `run`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The resolved inventory as JSON, shaped like `ansible-inventory --list`.")] = False,
    list_hosts: ListHosts = False,
    vault_files: VaultFiles = None,
    ask_vault: AskVault = False,
) -> None:
    """Show the hosts, groups, effective settings (and where each came from) an inventory resolves
    to, and the hosts skipped with the reason; passwords redacted.

    \b
    Examples:
      fleetcheck inventory inventories/lab.yml
      fleetcheck inventory -i hosts.ini --limit 'datacenter-a:&web'
      fleetcheck inventory -i inventory/ --vault-password-file ~/.vault-pass --json
    """
    import json

    from fleetcheck.inventory import apply_limit
    from fleetcheck.inventory.export import inventory_json
    from fleetcheck.inventory.show import render_inventory

    with user_errors():
        inv = load_inventory(inventory, sources, vault_files, ask_vault, summary=False)
        hosts = apply_limit(inv.hosts, inv.groups, limit) if inv.hosts or limit else []
        if as_json:
            inv.hosts = hosts
            typer.echo(json.dumps(inventory_json(inv), indent=2))
        elif list_hosts:
            typer.echo(f"  hosts ({len(hosts)}):")
            for host in hosts:
                typer.echo(f"    {host.name}")
        else:
            typer.echo(render_inventory(inv, hosts), nl=False)


def checks_cmd(
    playbook: Playbooks = None,
    all_checks: Annotated[bool, typer.Option("--all", help="Every built-in check, not only a playbook's.")] = False,
) -> None:
    """List the checks of a playbook (default: the System State Backup playbook).

    \b
    Examples:
      fleetcheck checks
      fleetcheck checks -p my-playbook.yml
      fleetcheck checks --all
    """
    with user_errors():
        from fleetcheck import api
        from fleetcheck.checks import render_checks_table

        playbooks = [] if all_checks else api.load_playbooks(playbook or [api.DEFAULT_PLAYBOOK])
        typer.echo(render_checks_table(playbooks))


def _check_id_choices(incomplete: str) -> list[str]:
    from fleetcheck.checks.registry import CHECK_ORDER

    return [c for c in CHECK_ORDER if c.startswith(incomplete.lower())]


def explain_cmd(
    check_id: Annotated[
        str,
        typer.Argument(metavar="CHECK_ID|N", help="A check id (any case), or the number the table shows for it.",
                       autocompletion=_check_id_choices),
    ],
    playbook: Annotated[
        list[str] | None,
        typer.Option("--playbook", "-p", metavar="NAME|PATH", help="Whose check numbers and remedy settings to use."),
    ] = None,
) -> None:
    """Explain one check: what it verifies, why it matters, how to fix a failure, its parameters,
    and the automatic fix of `fleetcheck fix` (whether the playbook enables it).

    \b
    Examples:
      fleetcheck explain vss-writers
      fleetcheck explain 11            # check number 11 of the table (default playbook's order)
      fleetcheck explain 3 -p my.yml   # number 3 in my.yml's order
    """
    with user_errors():
        from fleetcheck import api
        from fleetcheck.checks import render_explain
        from fleetcheck.checks.render import resolve_check_ref
        from fleetcheck.remedies.explain import render_remedy

        order = [cid for pb in api.load_playbooks(playbook) for cid in pb.check_ids()] if playbook else None
        try:
            check_id = resolve_check_ref(check_id, order)
            typer.echo(render_explain(check_id, order), nl=False)
        except KeyError as exc:
            raise UserError(str(exc.args[0]) if exc.args else f"unknown check id {check_id!r}") from None
        typer.echo(render_remedy(check_id, api.load_playbooks(playbook or [api.DEFAULT_PLAYBOOK])), nl=False)


def report_cmd(
    results: Annotated[
        Path,
        typer.Argument(metavar="RESULTS", help="A json report (`run --report json:PATH`) or a run journal (`--journal`)."),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="table, json, csv, junit, markdown, html, prometheus, sarif.")],
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
    from fleetcheck import api
    from fleetcheck.reports.base import WRITERS, ReportContext, get_renderer, get_writer, write_atomic
    from fleetcheck.reports.sanitize import sanitize_result

    with user_errors():
        result = sanitize_result(api.load_results(results))
        fmt = fmt.lower()
        if fmt != "table" and fmt not in WRITERS:
            raise UserError(f"unknown format '{fmt}'; known: table, {', '.join(sorted(WRITERS))}")
        if fmt != "table" and output is not None:
            get_writer(fmt)(result, output, ReportContext())
            return
        text = render_table(result, view, wide) if fmt == "table" else get_renderer(fmt)(result, ReportContext())
        if output is not None:
            write_atomic(output, text)
        else:
            typer.echo(text, nl=False)


View = Literal["full", "hosts", "checks", "summary"]


def check_view(view: str) -> View:
    if view not in ("full", "hosts", "checks", "summary"):
        raise UserError(f"--view '{view}': expected full, hosts, checks or summary")
    return cast(View, view)


def render_table(result: RunResult, view: str, wide: bool) -> str:
    from fleetcheck.reports.table import TableOptions, render_table

    ascii_only = (sys.stdout.encoding or "").lower().replace("-", "") not in ("utf8", "utf16", "utf32")
    return render_table(result, TableOptions(view=check_view(view), wide=wide, ascii=ascii_only))


def diff_cmd(
    run_a: Annotated[
        str | None,
        typer.Argument(metavar="RUN_A", help="Older run (id, prefix, last, last~N; default: the run before RUN_B "
                       "of the same inventory and --limit)."),
    ] = None,
    run_b: Annotated[str | None, typer.Argument(metavar="RUN_B", help="Newer run (default: the latest).")] = None,
    history: HistoryPath = None,
    list_runs: Annotated[
        bool, typer.Option("--list", help="List the recorded runs (id, date, inventory and --limit, counts) instead.")
    ] = False,
) -> None:
    """What changed between two recorded runs: new failures, fixed, still failing, hosts gone or new.

    The last line names the two runs compared.

    \b
    Examples:
      fleetcheck diff                  # the latest run against the previous run of its inventory
      fleetcheck diff last~7 last      # this week
      fleetcheck diff --list
    """
    with user_errors():
        from fleetcheck import nightly

        text = nightly.list_runs_text(history) if list_runs else nightly.diff_text(history, run_a, run_b)
        typer.echo(text)
