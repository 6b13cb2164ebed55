"""`junit` report for CI dashboards: one testsuite per host, one testcase per check.

fail -> <failure>, error/unknown -> <error>, skip/waived -> <skipped>. Every host starts with a
`connect` testcase timed with the host's real wall-clock time (connect, authenticate, collect
facts); a host we could not check has only that one, carrying the error, so dashboards count it.
Checks are judged locally from the collected facts in microseconds, so their own time is 0.

Class names: Jenkins splits `classname` at its last dot into package and class, so a host name
with dots (`ber-fs01.corp.example.com`) would become class `com`. The classname is therefore
`fleetcheck.<host with dots as underscores>` (package `fleetcheck`, class the host), the test
name is the check id, and the testsuite keeps the real host name (GitLab groups by suite).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from fleetcheck.reports.base import ReportContext, plain, sorted_hosts, write_atomic
from fleetcheck.results import UNCHECKED_STATUSES, CheckResult, CheckStatus, HostResult, RunResult


def _details(check: CheckResult) -> str:
    lines = [check.message]
    if check.observed is not None:
        lines.append(f"observed: {plain(check.observed)}")
    if check.expected is not None:
        lines.append(f"expected: {plain(check.expected)}")
    if check.remediation:
        lines.append(f"remediation: {check.remediation}")
    return "\n".join(lines)


def classname(host: str) -> str:
    """`fleetcheck.ber-fs01_corp_example_com`: exactly one dot, so CI tools show the host as the class."""
    return "fleetcheck." + host.replace(".", "_")


def _testcase(suite: ET.Element, host: HostResult, check: CheckResult) -> str:
    case = ET.SubElement(suite, "testcase", name=check.check_id, classname=classname(host.host), time="0")
    if check.status == CheckStatus.FAIL:
        ET.SubElement(case, "failure", message=check.message, type=check.severity).text = _details(check)
        return "failures"
    if check.status in (CheckStatus.ERROR, CheckStatus.UNKNOWN):
        ET.SubElement(case, "error", message=check.message, type=check.status.value).text = _details(check)
        return "errors"
    if check.status in (CheckStatus.SKIP, CheckStatus.WAIVED):
        reason = f"waived: {check.waiver}" if check.status == CheckStatus.WAIVED and check.waiver else check.message
        ET.SubElement(case, "skipped", message=reason)
        return "skipped"
    if check.status == CheckStatus.WARN:
        ET.SubElement(case, "system-out").text = f"warning: {_details(check)}"
    return ""


def _suite(root: ET.Element, host: HostResult) -> None:
    suite = ET.SubElement(root, "testsuite", name=host.host)
    if host.started_at is not None:
        suite.set("timestamp", host.started_at.isoformat())
    props = ET.SubElement(suite, "properties")
    for name, value in (("status", host.status.value), ("address", host.address), ("transport", host.transport)):
        ET.SubElement(props, "property", name=name, value=value)
    counts = {"tests": 1, "failures": 0, "errors": 0, "skipped": 0}
    case = ET.SubElement(
        suite, "testcase", name="connect", classname=classname(host.host), time=f"{host.duration_s:.3f}"
    )
    if host.status in UNCHECKED_STATUSES:
        ET.SubElement(case, "error", message=host.message, type=host.status.value).text = host.message
        counts["errors"] = 1
    for check in host.checks:
        counts["tests"] += 1
        outcome = _testcase(suite, host, check)
        if outcome:
            counts[outcome] += 1
    for key, count in counts.items():
        suite.set(key, str(count))
    suite.set("time", f"{host.duration_s:.3f}")


def render(result: RunResult, context: ReportContext | None = None) -> str:
    root = ET.Element("testsuites", name=f"fleetcheck {result.run_id}")
    for host in sorted_hosts(result):
        _suite(root, host)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))
