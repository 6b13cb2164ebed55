"""`fleetcheck fix` and `fleetcheck history fixes`: parse, call `fleetcheck.api.fix`, print, exit.

`fleetcheck.cli` mounts them; the work is in fleetcheck.fix (the use case), fleetcheck.fixview
(the text) and fleetcheck.fixlog (the audit trail).
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from fleetcheck.cli_lookup import user_errors
from fleetcheck.errors import UserError

FIX_HELP = """\b
Safety: nothing changes without --apply; --apply changes only checks the playbook sets to
`remediate: true`, asks first on a terminal (--yes to skip; without a terminal --yes is
required), goes --serial hosts at a time, stops when more than --max-fail-percent of a batch
failed, re-checks every host it touched, and records each change in the history database.
Ctrl-C stops between batches; a second Ctrl-C cuts the running batch short (recorded as
`interrupted`: run fix again to see the state).
Remedies are static scripts with one JSON argument; fix never restarts a host.

\b
Exit codes: as `run`'s, for the state the hosts are left in (plan: as scanned); 2 usage
error (also --apply without a terminal and without --yes); 4 interrupted.
"""


def interactive() -> bool:
    """Whether someone can answer the confirmation (standard input is a terminal)."""
    return sys.stdin.isatty()


def _json_report(specs: list[str] | None) -> Path | None:
    """The last `json:PATH` of `--report`, checked writable like `run`'s reports; fix writes no other format."""
    from fleetcheck.api import parse_report_specs

    parsed = parse_report_specs(specs or [])
    for spec in parsed:
        if spec.format != "json":
            raise UserError(f"--report {spec.format}:{spec.path}: fix writes json:PATH reports")
    return parsed[-1].path if parsed else None


def fix_cmd(
    inventory: Annotated[str, typer.Argument(metavar="INVENTORY", help="Inventory file, as for `run`.")],
    playbook: Annotated[list[str] | None, typer.Option("--playbook", "-p", metavar="NAME|PATH",
                                                       help="Playbook name or path (repeatable).")] = None,
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", help="Hosts, as for `run`.")] = None,
    checks: Annotated[str | None, typer.Option("--checks", metavar="IDS", help="Only these check ids (comma-separated).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Make the changes (default: only show the plan).")] = False,
    serial: Annotated[int | None, typer.Option("--serial", metavar="N", min=1, help="Hosts changed per batch [default: all].")] = None,
    max_fail_percent: Annotated[float, typer.Option("--max-fail-percent", metavar="P", min=0, max=100,
                                                    help="Stop when more than P% of a batch failed.")] = 100.0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    forks: Annotated[int, typer.Option("--forks", metavar="N", min=1, max=1000, help="Hosts at the same time.")] = 50,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="SECONDS", min=1, max=3600,
                                                  help="Per-host deadline for each step.")] = None,
    report: Annotated[list[str] | None, typer.Option("--report", "-r", metavar="json:PATH", help="JSON report of the fix.")] = None,
    history: Annotated[Path | None, typer.Option("--history", metavar="PATH", help="SQLite history file (audit trail).")] = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Do not record the changes (not advised).")] = False,
    waivers: Annotated[Path | None, typer.Option("--waivers", metavar="FILE", help="Waivers YAML: waived checks are not fixed.")] = None,
    ask_pass: Annotated[bool, typer.Option("--ask-pass", "-k", help="Prompt once per username.")] = False,
    ssh_known_hosts: Annotated[str, typer.Option("--ssh-known-hosts", metavar="default|accept|FILE")] = "default",
) -> None:
    """Plan the changes that make failing checks pass; apply them in batches with --apply.

    \b
    Examples:
      fleetcheck fix prod.yml                                   # the plan only
      fleetcheck fix prod.yml --checks svi-permission --apply --serial 10 --max-fail-percent 20
    """
    from fleetcheck import api, fix, fixview, nightly

    shown: list[bool] = []

    def show_plan(plans: list[fix.HostPlan]) -> None:
        typer.echo(fixview.render_plan(plans, apply=apply), nl=False)
        typer.echo(fixview.plan_summary(plans), nl=False)
        shown.append(True)

    def confirm(plans: list[fix.HostPlan]) -> bool:
        show_plan(plans)
        if yes:
            return True
        count = sum(len(p.to_apply) for p in plans)
        return typer.confirm(f"Apply {count} change(s) to {sum(1 for p in plans if p.to_apply)} host(s)?", default=False)

    with user_errors():
        if apply and not yes and not interactive():
            raise UserError("--apply asks for confirmation on a terminal; without one, add --yes")
        report_path = _json_report(report)
        request = fix.FixRequest(
            limit=limit, checks=[c.strip() for c in checks.split(",") if c.strip()] if checks else None, apply=apply,
            serial=serial, max_fail_percent=max_fail_percent, forks=forks, timeout=timeout,
            history=None if no_history else (history or nightly.default_history_path()), waivers=waivers,
            ssh_known_hosts=ssh_known_hosts, ask_pass=getpass.getpass if ask_pass else None, confirm=confirm,
            on_batch=lambda n, fixes: typer.echo(fixview.render_batch(n, fixes), nl=False),
            on_stop_requested=lambda: typer.echo(
                "fleetcheck: stopping after the running batch (nothing more will be changed; Ctrl-C again cuts it short)", err=True),
        )
        from fleetcheck.progress import Progress

        with Progress("bar" if sys.stderr.isatty() else "lines") as request.progress:
            outcome = api.fix(inventory, playbook or [], request)
    result = outcome.result
    if not shown:
        show_plan(result.plans)
    if apply and not any(p.to_apply for p in result.plans):
        off = sorted({cid for p in result.plans for cid in p.not_enabled})
        typer.echo("nothing applied: " + (f"not enabled for fixing: {', '.join(off)} (set remediate: true in the playbook)"
                                          if off else "no failing check has an automatic fix"))
    if apply and result.confirmed:
        typer.echo(fixview.result_summary(result), nl=False)
    elif result.stopped:
        typer.echo(f"stopped: {result.stopped}")
    if report_path is not None:
        report_path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    raise typer.Exit(outcome.exit_code)


def history_fixes_cmd(
    history: Annotated[Path | None, typer.Option("--history", metavar="PATH", help="SQLite history file.")] = None,
    host: Annotated[str | None, typer.Option("--host", metavar="NAME", help="Only this host.")] = None,
    limit: Annotated[int, typer.Option("--last", metavar="N", min=1, help="How many changes.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")] = False,
) -> None:
    """The audit trail of `fleetcheck fix`: every change tried, newest first."""
    from fleetcheck import fixlog, nightly

    records = fixlog.list_fixes(history or nightly.default_history_path(), limit=limit, host=host)
    if as_json:
        for r in records:
            row = {**r.__dict__, "at": r.at.astimezone(UTC).isoformat()}
            typer.echo(json.dumps(row))
        return
    typer.echo(fixlog.render_fixes(records), nl=False)

