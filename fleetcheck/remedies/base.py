"""What every remedy shares: planned changes, checks without a safe fix, the remedy definition.

A remedy is planned locally and purely: from the check's result, the host's typed facts, the
check's parameters and the playbook's remedy options it returns the changes in an admin's
words plus the JSON data one static script needs to make them. Nothing here touches a host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from fleetcheck.checks.base import CheckParams, Facts, ProbeUnavailable
from fleetcheck.results import CheckResult


class RemedyOptions(BaseModel):
    """Base of a remedy's options (playbook: checks.ID.remedy); unknown keys are playbook errors."""

    model_config = ConfigDict(extra="forbid")


class NoOptions(RemedyOptions):
    """A remedy without options."""


@dataclass(frozen=True)
class Change:
    """One change a remedy will make on one host.

    `action` names the function of the remedy script that makes it; `params` is all it gets
    (JSON data, never script text); `summary` is what the plan prints."""

    check_id: str
    action: str
    summary: str
    before: str
    after: str
    params: dict[str, Any] = field(default_factory=dict)
    restart_needed: bool = False


@dataclass(frozen=True)
class NoFix:
    """A failing check `fix` will not change on its own, and what the admin can do instead."""

    check_id: str
    reason: str
    remediation: str = ""


Planner = Callable[[CheckResult, Facts, Any, Any], "list[Change] | NoFix"]


@dataclass(frozen=True)
class RemedyDef:
    """The remedy of one check: what `explain` shows, its options, its planner."""

    check_id: str
    action: str
    describe: str
    planner: Planner
    options: type[RemedyOptions] = NoOptions

    def plan(self, result: CheckResult, facts: Facts, params: CheckParams, options: RemedyOptions | None) -> list[Change] | NoFix:
        """The changes for a failing check, or why there are none; unreadable facts are a NoFix."""
        try:
            return self.planner(result, facts, params, options or self.options())
        except ProbeUnavailable as exc:
            return NoFix(self.check_id, f"the facts a fix needs are missing ({exc})", result.remediation)
