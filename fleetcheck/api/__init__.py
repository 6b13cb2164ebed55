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

from fleetcheck.api.fixing import fix
from fleetcheck.api.inputs import (
    JOURNAL_ROTATE_BYTES,
    default_journal_path,
    load_inventory,
    load_playbooks,
    parse_report_specs,
    prepare_journal,
    run_scope,
)
from fleetcheck.api.options import (
    DEFAULT_PLAYBOOK,
    Console,
    EvaluateOptions,
    MergeOptions,
    ProgressSink,
    ReportSpec,
    RunOptions,
    RunOutcome,
)
from fleetcheck.api.run import (
    EXIT_GRACE_S,
    RUN_GC_THRESHOLD0,
    KerberosUnavailable,
    run,
    stop_workers,
    tuned_gc,
    write_reports,
)
from fleetcheck.api.saved import MAX_FACTS_BYTES, evaluate_saved, load_results
from fleetcheck.api.shards import merge_parts

__all__ = [
    "DEFAULT_PLAYBOOK",
    "EXIT_GRACE_S",
    "JOURNAL_ROTATE_BYTES",
    "MAX_FACTS_BYTES",
    "RUN_GC_THRESHOLD0",
    "Console",
    "EvaluateOptions",
    "KerberosUnavailable",
    "MergeOptions",
    "ProgressSink",
    "ReportSpec",
    "RunOptions",
    "RunOutcome",
    "default_journal_path",
    "evaluate_saved",
    "fix",
    "load_inventory",
    "load_playbooks",
    "load_results",
    "merge_parts",
    "parse_report_specs",
    "prepare_journal",
    "run",
    "run_scope",
    "stop_workers",
    "tuned_gc",
    "write_reports",
]
