"""The checks: pure rules over probe facts, a registry of check ids, and the evaluator.

Public API: `CHECKS`, `CheckDef`, `EvalContext`, `evaluate`, `unsupported_reason`,
`render_checks_table`, `render_explain`, `hresult_hex`, `parse_hresult`.
"""

from fleetcheck.checks.base import CheckDef, EvalContext, hresult_hex, parse_hresult
from fleetcheck.checks.evaluate import evaluate, evaluate_check, evaluate_custom, unsupported_reason
from fleetcheck.checks.registry import CHECK_ORDER, CHECKS
from fleetcheck.checks.render import render_checks_table, render_explain

__all__ = [
    "CHECKS",
    "CHECK_ORDER",
    "CheckDef",
    "EvalContext",
    "evaluate",
    "evaluate_check",
    "evaluate_custom",
    "hresult_hex",
    "parse_hresult",
    "render_checks_table",
    "render_explain",
    "unsupported_reason",
]
