"""`fix`: the library entry of `fleetcheck fix` (fleetcheck/fix.py has the rules)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcheck.api.inputs import load_inventory, load_playbooks, run_scope
from fleetcheck.api.options import DEFAULT_PLAYBOOK
from fleetcheck.results import exit_code

if TYPE_CHECKING:
    from fleetcheck.fix import FixOutcome, FixRequest


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
