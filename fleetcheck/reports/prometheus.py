"""Metrics for node_exporter's textfile collector (`--report prometheus:PATH`).

The collector may read the file at any moment, so it is replaced atomically (temp file in
the same directory, then rename). Point PATH into the collector's directory, name ending `.prom`.

Every series carries `inventory` and `playbook` labels, so the files of several inventories can
share one textfile directory without clashing. A host's status uses the enum pattern (the one
prometheus_client's `Enum` writes): `fleetcheck_host_status{status="..."}` has one series per
possible status, 1 for the current one and 0 for the others, so a status change flips values
instead of creating a new series; `fleetcheck_host_compliant` has no status label at all.
Alert on `fleetcheck_host_status{status="unreachable"} == 1` or `fleetcheck_host_failing_checks > 0`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from fleetcheck.reports.base import ReportContext
from fleetcheck.reports.html import atomic_write_text
from fleetcheck.results import FAILING, CheckStatus, HostStatus, RunResult


def escape_label(value: str) -> str:
    """Label value escaping of the text exposition format: backslash, quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}" if inner else ""


def _family(name: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)
    return lines


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _scope(run: RunResult) -> dict[str, str]:
    """The labels that tell two inventories' (or playbooks') files apart."""
    return {"inventory": run.inventory, "playbook": ",".join(run.playbooks)}


def render(run: RunResult, context: ReportContext | None = None) -> str:
    """The exposition text for one run (sans-IO, so tests can parse it directly)."""
    scope = _scope(run)
    check_ids = list(dict.fromkeys([*run.check_ids, *(c.check_id for h in run.hosts for c in h.checks)]))
    failing: Counter[str] = Counter()
    waived: Counter[str] = Counter()
    for host in run.hosts:
        for check in host.checks:
            if check.status in FAILING:
                failing[check.check_id] += 1
            elif check.status == CheckStatus.WAIVED:
                waived[check.check_id] += 1
    statuses = Counter(h.status for h in run.hosts)
    finished = run.finished_at or run.started_at
    duration = (finished - run.started_at).total_seconds()
    lines: list[str] = []
    lines += _family(
        "fleetcheck_check_failing_hosts",
        "Hosts on which the check failed or errored in the last run.",
        ((_labels(**scope, check=cid), failing[cid]) for cid in check_ids),
    )
    lines += _family(
        "fleetcheck_check_waived_hosts",
        "Hosts on which a failure of the check was waived in the last run.",
        ((_labels(**scope, check=cid), waived[cid]) for cid in check_ids),
    )
    lines += _family(
        "fleetcheck_host_compliant",
        "1 if the host was compliant in the last run, 0 otherwise (fleetcheck_host_status says why).",
        ((_labels(**scope, host=h.host), 1 if h.status == HostStatus.COMPLIANT else 0) for h in run.hosts),
    )
    lines += _family(
        "fleetcheck_host_status",
        "Final status of the host in the last run: 1 for the current status, 0 for the others (enum).",
        (
            (_labels(**scope, host=h.host, status=s.value), 1 if h.status == s else 0)
            for h in run.hosts
            for s in HostStatus
        ),
    )
    lines += _family(
        "fleetcheck_host_failing_checks",
        "Checks that failed or could not be evaluated on the host in the last run.",
        ((_labels(**scope, host=h.host), sum(1 for c in h.checks if c.status in FAILING)) for h in run.hosts),
    )
    lines += _family(
        "fleetcheck_hosts",
        "Hosts in the last run by final status.",
        ((_labels(**scope, status=s.value), statuses.get(s, 0)) for s in HostStatus),
    )
    run_labels = _labels(**scope)
    lines += _family(
        "fleetcheck_run_duration_seconds", "Wall-clock duration of the last run.", [(run_labels, duration)]
    )
    lines += _family(
        "fleetcheck_run_timestamp_seconds",
        "Unix time at which the last run finished.",
        [(run_labels, round(finished.timestamp(), 3))],
    )
    lines += _family(
        "fleetcheck_run_interrupted",
        "1 if the last run was interrupted (partial results).",
        [(run_labels, int(run.interrupted))],
    )
    return "\n".join(lines) + "\n"


def write(run: RunResult, path: Path, ctx: ReportContext) -> None:
    """Report writer for `--report prometheus:PATH` (atomic replace)."""
    atomic_write_text(Path(path), render(run))
