"""`sarif` report: SARIF 2.1.0, the format of GitHub and Azure DevOps code-scanning views.

One rule per check (id, title, default level from its severity, tags), one result per failing,
not evaluable or warning check on a host; passing checks are not results. A waived failure is a
result with an external suppression carrying the waiver, so viewers show it as dismissed.

Code-scanning views need a file to attach a result to: every result points at the inventory file
(the run's scope) and names the host as a logical location of kind "resource"; the partial
fingerprint `fleetcheck/v1` (host and check) lets a viewer follow one finding across nights.
Hosts that could not be checked are tool execution notifications of the invocation: the scan of
that host did not happen, which is not a finding about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleetcheck.reports.base import ReportContext, plain, write_atomic
from fleetcheck.reports.ordering import check_severities, check_titles, sorted_hosts
from fleetcheck.results import UNCHECKED_STATUSES, CheckResult, CheckStatus, RunResult

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/fleetcheck/fleetcheck"

#: check severity -> SARIF level of a failure; warnings are always "warning", not evaluable "note".
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
#: GitHub's numeric security-severity (0-10) per severity, so its view sorts the same way.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.5"}
REPORTED = frozenset(
    {CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.UNKNOWN, CheckStatus.WARN, CheckStatus.WAIVED}
)


def _artifact(result: RunResult) -> str:
    """The inventory file of the run (its scope without a `--limit ...` suffix)."""
    scope = result.inventory.split(" --limit ", 1)[0]
    return Path(scope).as_uri() if Path(scope).is_absolute() else scope or "inventory"


def _rules(result: RunResult, ids: list[str]) -> list[dict[str, Any]]:
    from fleetcheck.checks.registry import CHECKS

    severities = check_severities(result)
    titles = check_titles(ids)
    rules = []
    for cid in ids:
        severity = severities.get(cid, "medium")
        cdef = CHECKS.get(cid)
        rule: dict[str, Any] = {
            "id": cid,
            "name": "".join(part.capitalize() for part in cid.replace(".", "-").split("-")),
            "shortDescription": {"text": titles[cid]},
            "defaultConfiguration": {"level": LEVEL.get(severity, "warning")},
            "properties": {
                "severity": severity,
                "security-severity": SECURITY_SEVERITY.get(severity, "5.5"),
                "tags": sorted({*(cdef.tags if cdef else ()), "compliance"}),
            },
        }
        if cdef is not None:
            rule["fullDescription"] = {"text": cdef.verifies or cdef.title}
            rule["help"] = {"text": f"Why: {cdef.why}\nHow to fix: {cdef.fix}".strip()}
        rules.append(rule)
    return rules


def _level(check: CheckResult) -> str:
    if check.status == CheckStatus.WARN:
        return "warning"
    if check.status in (CheckStatus.ERROR, CheckStatus.UNKNOWN):
        return "note"
    return LEVEL.get(check.severity, "warning")


def _result(host: str, check: CheckResult, index: int, artifact: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ruleId": check.check_id,
        "ruleIndex": index,
        "level": _level(check),
        "kind": "fail" if check.status in (CheckStatus.FAIL, CheckStatus.WAIVED, CheckStatus.WARN) else "review",
        "message": {"text": f"{host}: {check.message}" if check.message else host},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": artifact}, "region": {"startLine": 1}},
                "logicalLocations": [{"name": host, "fullyQualifiedName": host, "kind": "resource"}],
            }
        ],
        "partialFingerprints": {"fleetcheck/v1": f"{host.lower()}|{check.check_id}"},
        "properties": {
            "host": host,
            "status": check.status.value,
            "severity": check.severity,
            "observed": plain(check.observed),
            "expected": plain(check.expected),
            "remediation": check.remediation,
        },
    }
    if check.status == CheckStatus.WAIVED:
        out["suppressions"] = [{"kind": "external", "status": "accepted", "justification": check.waiver or "waived"}]
    return out


def build(result: RunResult) -> dict[str, Any]:
    """The SARIF log as plain data (tests validate it against the OASIS schema)."""
    ids = list(dict.fromkeys([*result.check_ids, *(c.check_id for h in result.hosts for c in h.checks)]))
    index = {cid: i for i, cid in enumerate(ids)}
    artifact = _artifact(result)
    results = [
        _result(host.host, check, index[check.check_id], artifact)
        for host in sorted_hosts(result)
        for check in host.checks
        if check.status in REPORTED
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{host.host}: not checked ({host.status.value}): {host.message}"},
            "descriptor": {"id": host.status.value},
            "locations": [{"logicalLocations": [{"name": host.host, "kind": "resource"}]}],
        }
        for host in sorted_hosts(result)
        if host.status in UNCHECKED_STATUSES
    ]
    invocation: dict[str, Any] = {
        "executionSuccessful": not result.interrupted,
        "startTimeUtc": result.started_at.isoformat().replace("+00:00", "Z"),
        "toolExecutionNotifications": notifications,
    }
    if result.finished_at is not None:
        invocation["endTimeUtc"] = result.finished_at.isoformat().replace("+00:00", "Z")
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fleetcheck",
                        "version": result.fleetcheck_version or "0",
                        "informationUri": INFORMATION_URI,
                        "rules": _rules(result, ids),
                    }
                },
                "automationDetails": {"id": f"fleetcheck/{', '.join(result.playbooks) or 'run'}/{result.run_id}"},
                "invocations": [invocation],
                "results": results,
                "properties": {"inventory": result.inventory, "playbooks": result.playbooks},
            }
        ],
    }


def render(result: RunResult, context: ReportContext | None = None) -> str:
    return json.dumps(build(result), indent=2, ensure_ascii=False) + "\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))
