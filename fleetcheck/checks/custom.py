"""Custom checks: a user's script prints JSON; a small rule vocabulary judges one value of it.

Vocabulary (exactly one operator per expectation, on a path into the JSON output):
`equals`, `one_of`, `at_least`, `version_at_least`, `matches` (regular expression search).
Paths: `a.b[0].c`, `$.a.b`, `['key.with.dots']`; empty or `$` is the whole output.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleetcheck.checks.base import version_at_least

OPERATORS = ("equals", "one_of", "at_least", "version_at_least", "matches")
_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_MISSING = object()
#: Seconds one `matches` search may take: backtracking patterns such as `^(a+)+$` are
#: exponential in the host's text, and judging must never outlive the host's deadline.
MATCH_TIMEOUT_S = 0.25
#: Characters of an observed value quoted in a reason (host output can be huge).
_SHOWN = 80


def split_path(path: str) -> list[str | int]:
    """`a.b[0]['x.y']` → ["a", "b", 0, "x.y"]; raises ValueError on bad syntax."""
    s = path.strip()
    if s.startswith("$"):
        s = s[1:]
    parts: list[str | int] = []
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read path {path!r} at position {pos + (len(path) - len(s))}")
        key, index, sq, dq = m.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(next(x for x in (key, sq, dq) if x is not None))
        pos = m.end()
    return parts


def resolve(value: Any, path: str) -> Any:
    """The value at `path`, or the module's _MISSING marker."""
    cur = value
    for part in split_path(path):
        in_list = isinstance(part, int) and isinstance(cur, list) and -len(cur) <= part < len(cur)
        in_dict = isinstance(part, str) and isinstance(cur, dict) and part in cur
        if not (in_list or in_dict):
            return _MISSING
        cur = cur[part]
    return cur


class Expectation(BaseModel):
    """One condition on the script's JSON output."""

    model_config = ConfigDict(extra="forbid")

    path: str = ""
    equals: Any = None
    one_of: list[Any] | None = None
    at_least: float | None = None
    version_at_least: str | None = Field(default=None, pattern=r"^\d+(\.\d+){0,3}$")
    matches: str | None = None

    @field_validator("path")
    @classmethod
    def _path_ok(cls, v: str) -> str:
        split_path(v)
        return v

    @field_validator("matches")
    @classmethod
    def _regex_ok(cls, v: str | None) -> str | None:
        if v is not None:
            import regex  # only playbooks with `matches` pay for its import

            try:
                regex.compile(v)
            except regex.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one_operator(self) -> Expectation:
        ops = self.operators()
        if len(ops) != 1:
            raise ValueError(f"give exactly one of {', '.join(OPERATORS)} (found: {', '.join(ops) or 'none'})")
        return self

    def operators(self) -> list[str]:
        return [op for op in OPERATORS if op in self.model_fields_set]

    def describe(self) -> str:
        op = self.operators()[0]
        return f"{self.path or '$'} {op} {getattr(self, op)!r}"

    def check(self, output: Any) -> tuple[bool, Any, str]:
        """(holds, observed value, reason when it does not hold)."""
        value = resolve(output, self.path)
        if value is _MISSING:
            return False, None, f"{self.path or '$'} is not in the output"
        op = self.operators()[0]
        if op == "equals":
            ok = _same(value, self.equals)
            return ok, value, "" if ok else f"{self.path or '$'} is {_show(value)}, expected {self.equals!r}"
        if op == "one_of":
            ok = any(_same(value, x) for x in self.one_of or [])
            return ok, value, "" if ok else f"{self.path or '$'} is {_show(value)}, expected one of {self.one_of!r}"
        if op == "at_least":
            num = _number(value)
            if num is None:
                return False, value, f"{self.path or '$'} is {_show(value)}, not a number"
            ok = num >= (self.at_least or 0)
            return ok, value, "" if ok else f"{self.path or '$'} is {_show(value)}, expected at least {self.at_least:g}"
        if op == "version_at_least":
            res = version_at_least(str(value), self.version_at_least or "0")
            if res is None:
                return False, value, f"{self.path or '$'} is {_show(value)}, not a version number"
            return res, value, "" if res else f"{self.path or '$'} is {value}, expected at least {self.version_at_least}"
        if not isinstance(value, (str, int, float)):
            return False, value, f"{self.path or '$'} is {_show(value)}, does not match {self.matches!r}"
        import regex

        try:
            ok = regex.search(self.matches or "", str(value), timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError:
            reason = (
                f"matching {self.matches!r} took longer than {MATCH_TIMEOUT_S:g} s on this host's value - "
                "simplify the regular expression (nested repetition such as (a+)+ backtracks exponentially)"
            )
            return False, _show(value), reason
        return ok, value, "" if ok else f"{self.path or '$'} is {_show(value)}, does not match {self.matches!r}"


def _same(a: Any, b: Any) -> bool:
    """JSON equality where true is not 1 and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**_SHOWN else f"<integer of {len(str(abs(value)))} digits>"
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _number(value: Any) -> int | float | None:
    """A JSON number as Python compares it exactly: integers stay integers (a float has 308 digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
