"""Facts + playbooks → one CheckResult per check id, the only place rules meet the envelope."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetcheck.checks.base import EvalContext, Facts, ProbeUnavailable, Verdict, is_access_denied
from fleetcheck.checks.registry import CHECKS
from fleetcheck.facts import FactsDocument
from fleetcheck.probes.schema import CustomData
from fleetcheck.results import CheckResult, CheckStatus

if TYPE_CHECKING:
    from fleetcheck.playbook import CheckSettings, CustomCheck, Playbook


def unsupported_reason(facts: FactsDocument) -> str | None:
    """Why the host cannot run the probes at all (e.g. "PowerShell 2.0"), else None.

    The caller then marks the host `unsupported` instead of evaluating checks."""
    return facts.unsupported or None


#: The fields `_result` gives: pydantic's record of the fields set, one object for all results.
_GIVEN = {"check_id", "status", "message", "observed", "expected", "remediation", "severity", "tags"}


def _result(check_id: str, settings: CheckSettings | CustomCheck, v: Verdict, default_fix: str) -> CheckResult:
    fix = v.remediation
    if fix is None:
        fix = default_fix if v.status not in (CheckStatus.PASS, CheckStatus.SKIP) else ""
    # Every check of every host: the record of fields set and the tags list are shared by all
    # results of the run (read-only by convention). Validating would give each result its own
    # set (728 bytes for eight names) and list: 190 MB of a 10,000-host run, for 0.1 ms less
    # CPU per host than this documented `model_construct(_fields_set=...)` from typed values.
    return CheckResult.model_construct(
        _fields_set=_GIVEN,
        check_id=check_id,
        status=v.status,
        message=v.message,
        observed=v.observed,
        expected=v.expected,
        remediation=fix,
        severity=settings.severity,
        tags=settings.tags,
    )


def _unavailable(exc: ProbeUnavailable) -> Verdict:
    if exc.access_denied:
        return Verdict(
            CheckStatus.UNKNOWN,
            f"Could not read the facts: {exc}",
            observed=exc.error_type,
            remediation="Scan with an account that is a local administrator on the host.",
        )
    return Verdict(CheckStatus.ERROR, str(exc), observed=exc.error_type, remediation="")


def evaluate_check(settings: CheckSettings, facts: Facts, ctx: EvalContext) -> CheckResult:
    cdef = CHECKS[settings.id]
    if not settings.enabled:
        return _result(settings.id, settings, Verdict(CheckStatus.SKIP, "Disabled in the playbook", remediation=""), "")
    try:
        verdict = cdef.rule(facts, settings.params, ctx)
    except ProbeUnavailable as exc:
        verdict = _unavailable(exc)
    except Exception as exc:  # a rule bug is one error row, never the host's or the run's end
        verdict = Verdict(
            CheckStatus.ERROR, f"internal error in rule {settings.id}: {type(exc).__name__}", observed=None, remediation=""
        )
    return _result(settings.id, settings, verdict, cdef.fix)


def evaluate_custom(check: CustomCheck, facts: Facts, ctx: EvalContext) -> CheckResult:
    fix = check.remediation or "See the playbook's description of this custom check."
    if not check.enabled:
        return _result(check.id, check, Verdict(CheckStatus.SKIP, "Disabled in the playbook", remediation=""), fix)
    try:
        data = facts.get("custom", CustomData)
    except ProbeUnavailable as exc:
        return _result(check.id, check, _unavailable(exc), fix)
    res = data.results.get(check.id)
    if res is None:
        verdict = Verdict(CheckStatus.ERROR, f"No output from custom check script {check.id}", remediation="")
    elif res.error is not None:
        status = CheckStatus.UNKNOWN if is_access_denied(res.error.type, res.error.hresult) else CheckStatus.ERROR
        verdict = Verdict(status, f"Custom script failed: {res.error.type}: {res.error.message}", observed=res.error.type, remediation="")
    else:
        verdict = _judge_custom(check, res.value)
    return _result(check.id, check, verdict, fix)


def _judge_custom(check: CustomCheck, value: object) -> Verdict:
    expected = [e.describe() for e in check.expect]
    observed: dict[str, object] = {}
    reasons: list[str] = []
    for exp in check.expect:
        ok, seen, reason = exp.check(value)
        observed[exp.path or "$"] = seen
        if not ok:
            reasons.append(reason)
    if reasons:
        status = CheckStatus.WARN if check.status_on_failure == "warn" else CheckStatus.FAIL
        return Verdict(status, "; ".join(reasons), observed, expected)
    return Verdict(CheckStatus.PASS, check.title or "All expectations met", observed, expected, "")


def evaluate(facts: FactsDocument, playbooks: list[Playbook], ctx: EvalContext | None = None) -> list[CheckResult]:
    """Results of every check of the playbooks, in playbook order, one per check id.

    A check id in several playbooks is evaluated once: the first playbook that enables it
    decides its parameters. Returns [] for a host marked unsupported (see unsupported_reason)."""
    if unsupported_reason(facts):
        return []
    ctx = ctx or EvalContext()
    view = Facts(facts)
    chosen: dict[str, tuple[CheckSettings | None, CustomCheck | None]] = {}
    for pb in playbooks:
        entries: list[tuple[str, bool, tuple[CheckSettings | None, CustomCheck | None]]]
        entries = [(s.id, s.enabled, (s, None)) for s in pb.checks.values()]
        entries += [(c.id, c.enabled, (None, c)) for c in pb.custom_checks]
        for check_id, enabled, pair in entries:
            current = chosen.get(check_id)
            if current is None or (enabled and not _enabled(current)):
                chosen[check_id] = pair
    results: list[CheckResult] = []
    for builtin, custom in chosen.values():
        if builtin is not None:
            results.append(evaluate_check(builtin, view, ctx))
        elif custom is not None:
            results.append(evaluate_custom(custom, view, ctx))
    return results


def _enabled(pair: tuple[CheckSettings | None, CustomCheck | None]) -> bool:
    return any(x is not None and x.enabled for x in pair)
