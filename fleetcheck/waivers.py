"""Waivers: a known, accepted failure on some hosts, with a reason and an end date.

File format (YAML)::

    waivers:
      - check: SSB-WSB-INSTALLED        # check id (glob allowed)
        hosts: ["legacy-*"]             # host name globs, and/or
        groups: [dmz]                   # inventory group globs
        justification: "Replaced by Veeam until the migration (CHG-1234)"
        expires: 2026-12-31             # last day the waiver applies

A waived failure becomes status `waived`: counted on its own and no longer making its host
noncompliant. Once expired a waiver stops applying and says so, so nothing is waived forever.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetcheck.errors import UserError
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult, host_status
from fleetcheck.yamlfile import MarkedDict, MarkedList, YamlFileError, parse_yaml, read_text

#: Statuses a waiver turns into `waived`. Pass and skip have nothing to waive.
WAIVABLE = frozenset({CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.WARN, CheckStatus.UNKNOWN})
#: A note is printed when a waiver ends within this many days.
EXPIRY_WARNING_DAYS = 14


class WaiverFileError(UserError, ValueError):
    """A waivers file that cannot be used; the message names file, line and the fix."""


class Waiver(BaseModel):
    """One waiver entry."""

    model_config = ConfigDict(extra="forbid")

    check: str = Field(min_length=1)
    hosts: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    justification: str = Field(min_length=1)
    expires: date
    line: int = Field(default=0, exclude=True)  # where it came from, for notes

    @field_validator("hosts", "groups", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("justification")
    @classmethod
    def _real_reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("justification must say why the failure is accepted")
        return value.strip()

    @model_validator(mode="after")
    def _has_scope(self) -> Waiver:
        if not self.hosts and not self.groups:
            raise ValueError("give `hosts` and/or `groups` (globs) that this waiver covers")
        return self

    def covers(self, host: HostResult, check_id: str) -> bool:
        if not fnmatch.fnmatchcase(check_id, self.check):
            return False
        if any(fnmatch.fnmatchcase(host.host, pattern) for pattern in self.hosts):
            return True
        return any(fnmatch.fnmatchcase(g, pattern) for g in host.groups for pattern in self.groups)

    def label(self) -> str:
        scope = ", ".join([*self.hosts, *(f"group {g}" for g in self.groups)])
        return f"{self.check} on {scope}"


def parse_waivers(text: str, source: str = "<waivers>") -> list[Waiver]:
    """Parse and validate a waivers document; raises WaiverFileError naming file and line."""
    try:
        data = parse_yaml(text, source)
    except YamlFileError as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        raise WaiverFileError(f"{where}: {exc.problem}" + (f" ({exc.hint})." if exc.hint else ".")) from None
    if data is None:
        return []
    if isinstance(data, dict):
        unknown = set(data) - {"waivers"}
        if unknown:
            raise WaiverFileError(
                f"{source}:1: unknown top-level key(s) {sorted(map(str, unknown))}; "
                "the file holds one key, `waivers:`, with a list of entries."
            )
        data = data.get("waivers") or []
    if not isinstance(data, list):
        raise WaiverFileError(f"{source}:1: expected a list of waivers under `waivers:`.")
    waivers: list[Waiver] = []
    for index, entry in enumerate(data):
        line = data.item_lines[index] if isinstance(data, MarkedList) else 0
        if not isinstance(entry, dict):
            raise WaiverFileError(
                f"{source}:{line}: waiver #{index + 1} must be a mapping with check, hosts/groups,"
                " justification and expires."
            )
        try:
            waivers.append(Waiver.model_validate({**entry, "line": line}))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = err["loc"][0] if err["loc"] else None
            if loc is not None and isinstance(entry, MarkedDict) and loc in entry:
                line = entry.key_lines[loc]
            what = f"`{loc}`: " if loc is not None else ""
            raise WaiverFileError(
                f"{source}:{line}: waiver #{index + 1}: {what}{_explain(err)}"
            ) from None
    return waivers


def _explain(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "is required (every waiver needs check, hosts or groups, justification, expires)."
    if kind == "extra_forbidden":
        return "unknown key; allowed keys are check, hosts, groups, justification, expires."
    if kind.startswith("date"):
        return "not a date; write it as YYYY-MM-DD, e.g. 2026-12-31."
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ") + "."


def load_waivers(path: Path | str) -> list[Waiver]:
    """Read a waivers file; raises WaiverFileError (never a traceback) on any problem."""
    path = Path(path)
    try:
        text = read_text(path)
    except YamlFileError as exc:
        raise WaiverFileError(f"{path}: cannot read waivers file ({exc.problem}). Check --waivers.") from None
    return parse_waivers(text, str(path))


@dataclass
class _Use:
    waiver: Waiver
    applied: int = 0
    blocked: int = 0  # matches an expired waiver would have covered


def _waive(check: CheckResult, waiver: Waiver) -> CheckResult:
    note = f"{waiver.justification} (until {waiver.expires.isoformat()})"
    return check.model_copy(update={"status": CheckStatus.WAIVED, "waiver": note})


def _host_update(host: HostResult, checks: list[CheckResult]) -> dict[str, object]:
    """New checks, and status/message when waivers leave nothing failing on a noncompliant host."""
    update: dict[str, object] = {"checks": checks}
    if host.status == HostStatus.NONCOMPLIANT:
        status, message = host_status(checks)
        if status is HostStatus.COMPLIANT:
            update["status"], update["message"] = status, message
    return update


def apply_waivers(run: RunResult, waivers: list[Waiver], today: date) -> tuple[RunResult, list[str]]:
    """Return a copy of `run` with waived failures and the notes to show the user.

    A waiver applies through its `expires` day included. The first live waiver that covers a
    check wins. Notes: expired waivers (and what they no longer cover), waivers ending soon.
    """
    uses = [_Use(w) for w in waivers]
    live = [u for u in uses if u.waiver.expires >= today]
    dead = [u for u in uses if u.waiver.expires < today]
    hosts: list[HostResult] = []
    for host in run.hosts:
        checks: list[CheckResult] = []
        for check in host.checks:
            if check.status in WAIVABLE:
                use = next((u for u in live if u.waiver.covers(host, check.check_id)), None)
                if use is not None:
                    use.applied += 1
                    check = _waive(check, use.waiver)
                else:
                    for u in dead:
                        if u.waiver.covers(host, check.check_id):
                            u.blocked += 1
            checks.append(check)
        hosts.append(host.model_copy(update=_host_update(host, checks)))
    known = set(run.check_ids) | {c.check_id for h in run.hosts for c in h.checks}
    return run.model_copy(update={"hosts": hosts}), _notes(uses, today, known)


def _notes(uses: list[_Use], today: date, known_checks: set[str]) -> list[str]:
    notes: list[str] = []
    for u in uses:
        w = u.waiver
        where = f" (line {w.line})" if w.line else ""
        if known_checks and not any(fnmatch.fnmatchcase(c, w.check) for c in known_checks):
            notes.append(f"waiver {w.label()}{where}: no check of this run is called {w.check!r} (a typo?).")
        elif w.expires < today:
            effect = f"; {u.blocked} failing result(s) it covered now count again" if u.blocked else ""
            notes.append(f"waiver {w.label()}{where} expired on {w.expires.isoformat()} and no longer applies{effect}.")
        elif w.expires <= today + timedelta(days=EXPIRY_WARNING_DAYS):
            notes.append(f"waiver {w.label()}{where} expires on {w.expires.isoformat()} (applied to {u.applied}).")
    return notes
