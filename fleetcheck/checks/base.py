"""What every rule shares: the evaluation context, typed fact access, verdicts, check definitions.

A rule is a pure function `(facts, params, ctx) -> Verdict`; it never sees a socket, a clock
or the playbook file. The evaluator adds the check id, severity and tags to make a
`CheckResult`, and turns a failed or missing probe into `error` / `unknown` in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fleetcheck.facts import FactsDocument
from fleetcheck.probes.schema import PROBES, ItemError
from fleetcheck.results import CheckStatus

M = TypeVar("M", bound=BaseModel)
Severity = Literal["info", "low", "medium", "high", "critical"]

#: Error types meaning "we were not allowed to read it": the fact is unknown, not wrong.
ACCESS_DENIED_TYPES = frozenset(
    {"UnauthorizedAccessException", "PermissionDenied", "AccessDenied", "SecurityException"}
)
E_ACCESSDENIED = 0x80070005


@dataclass(frozen=True)
class EvalContext:
    """Facts about the scan itself: the scanning machine's UTC time (clock skew, windows)."""

    scan_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.scan_time.tzinfo is None:
            object.__setattr__(self, "scan_time", self.scan_time.replace(tzinfo=UTC))


@dataclass(frozen=True)
class Verdict:
    """A rule's answer before the evaluator dresses it as a CheckResult."""

    status: CheckStatus
    message: str
    observed: Any = None
    expected: Any = None
    remediation: str | None = None  # None: the check's default remediation (pass/skip: none)


def passed(message: str, observed: Any = None, expected: Any = None) -> Verdict:
    return Verdict(CheckStatus.PASS, message, observed, expected, "")


def failed(message: str, observed: Any = None, expected: Any = None, remediation: str | None = None) -> Verdict:
    return Verdict(CheckStatus.FAIL, message, observed, expected, remediation)


def warned(message: str, observed: Any = None, expected: Any = None, remediation: str | None = None) -> Verdict:
    return Verdict(CheckStatus.WARN, message, observed, expected, remediation)


def unknown(message: str, observed: Any = None, expected: Any = None, remediation: str | None = None) -> Verdict:
    return Verdict(CheckStatus.UNKNOWN, message, observed, expected, remediation)


def skipped(message: str, observed: Any = None, expected: Any = None) -> Verdict:
    return Verdict(CheckStatus.SKIP, message, observed, expected, "")


class ProbeUnavailable(Exception):
    """A probe a rule needs is missing, failed remotely, or returned data off the schema."""

    def __init__(self, probe_id: str, error_type: str, message: str, hresult: int | None = None) -> None:
        super().__init__(f"probe '{probe_id}' failed: {error_type}: {message}")
        self.probe_id = probe_id
        self.error_type = error_type
        self.detail = message
        self.hresult = hresult

    @property
    def access_denied(self) -> bool:
        return is_access_denied(self.error_type, self.hresult)


def is_access_denied(error_type: str, hresult: int | None = None) -> bool:
    return error_type in ACCESS_DENIED_TYPES or (hresult is not None and hresult & 0xFFFFFFFF == E_ACCESSDENIED)


def item_denied(err: ItemError | None) -> bool:
    return err is not None and is_access_denied(err.type, err.hresult)


class Facts:
    """Typed, cached access to one host's probe data; raises ProbeUnavailable instead of None."""

    def __init__(self, doc: FactsDocument) -> None:
        self.doc = doc
        self._cache: dict[str, BaseModel] = {}

    def get(self, probe_id: str, model: type[M]) -> M:
        if probe_id in self._cache:
            return self._cache[probe_id]  # type: ignore[return-value]
        outcome = self.doc.probes.get(probe_id)
        if outcome is None:
            raise ProbeUnavailable(probe_id, "NotCollected", "the probe is not in the facts document")
        if outcome.error is not None:
            raise ProbeUnavailable(probe_id, outcome.error.type, outcome.error.message, outcome.error.hresult)
        if outcome.data is None:
            raise ProbeUnavailable(probe_id, "NoData", "the probe returned no data")
        try:
            data = outcome.parsed if type(outcome.parsed) is model else model.model_validate(outcome.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ProbeUnavailable(probe_id, "SchemaMismatch", f"{where}: {first['msg']}") from None
        self._cache[probe_id] = data
        return data


class CheckParams(BaseModel):
    """Base of every check's params model: unknown keys are playbook errors."""

    model_config = ConfigDict(extra="forbid")


class NoParams(CheckParams):
    """A check without parameters."""


Rule = Callable[[Facts, Any, EvalContext], Verdict]
RequestBuilder = Callable[[Any], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class CheckDef:
    """One built-in check: identity, the probes it needs, its rule and its explanation."""

    id: str
    title: str
    family: str
    rule: Rule
    requests: RequestBuilder
    params: type[CheckParams] = NoParams
    severity: Severity = "medium"
    tags: tuple[str, ...] = ()
    verifies: str = ""
    why: str = ""
    fix: str = ""

    @property
    def probes(self) -> list[str]:
        """Probe ids this check reads with its default parameters."""
        return sorted(self.requests(self.params()))


def hresult_hex(value: int | None) -> str:
    """An HRESULT as Windows prints it: `0x8078011E` (negative ints wrapped to unsigned)."""
    if value is None:
        return "n/a"
    return f"0x{value & 0xFFFFFFFF:08X}"


def parse_hresult(text: str | int) -> int | None:
    """`0x800423f2`, `800423F2`, `2147754994` or `-2147212302` → unsigned int."""
    if isinstance(text, int):
        return text & 0xFFFFFFFF
    s = text.strip()
    try:
        if s.lower().startswith("0x"):
            return int(s, 16) & 0xFFFFFFFF
        if s.lstrip("-").isdigit():
            return int(s) & 0xFFFFFFFF
        return int(s, 16) & 0xFFFFFFFF
    except ValueError:
        return None


def hresult_in_text(hresult: int, texts: list[str]) -> bool:
    """Whether an HRESULT appears in insertion strings or messages, in hex or signed/unsigned decimal."""
    h = hresult & 0xFFFFFFFF
    forms = {f"{h:08x}"}
    if h >= 0x10000:  # short decimals would match any number in the text
        forms |= {str(h), str(h - (1 << 32) if h & 0x80000000 else h)}
    for t in texts:
        low = t.lower()
        if any(f in low for f in forms):
            return True
    return False


def parse_utc(value: str | None) -> datetime | None:
    """ISO 8601 from the probes (7-digit fractions and `Z` allowed) → aware UTC datetime."""
    if not value:
        return None
    s = value.strip().replace("Z", "+00:00")
    if "." in s:
        head, _, rest = s.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        s = f"{head}.{digits[:6]}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """`2.0.9262.0` → (2, 0, 9262, 0); None when any part is not a number."""
    if not text:
        return None
    parts = text.strip().split(".")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return None


def version_at_least(actual: str | None, minimum: str) -> bool | None:
    a, m = version_tuple(actual), version_tuple(minimum)
    if a is None or m is None:
        return None
    width = max(len(a), len(m))
    return a + (0,) * (width - len(a)) >= m + (0,) * (width - len(m))


def probe_spec_ok(probe_id: str) -> bool:
    return probe_id in PROBES
