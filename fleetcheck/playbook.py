"""Playbooks: which checks run, with which parameters, severities and tags, plus custom checks.

A playbook is YAML that users copy and edit, so every mistake is reported with the file, the
line, the key, what is wrong and what to do (`PlaybookError`), never with a traceback.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetcheck.checks.base import CheckParams, Severity
from fleetcheck.checks.custom import Expectation
from fleetcheck.checks.registry import CHECK_ORDER, CHECKS
from fleetcheck.errors import UserError
from fleetcheck.probes.schema import MAX_SCRIPT
from fleetcheck.yamlfile import YamlFileError, line_of, parse_yaml, read_text

BUILTIN_DIR = Path(__file__).resolve().parent / "playbooks"
MAX_PLAYBOOK_BYTES = 1_000_000
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class PlaybookError(UserError):
    """A playbook that cannot be used; the message names file, line, key, problem and fix."""

    def __init__(self, path: str, line: int | None, key: str | None, problem: str, hint: str = "") -> None:
        self.path, self.line, self.key, self.problem, self.hint = path, line, key, problem, hint
        where = path + (f", line {line}" if line else "")
        what = f"{key}: {problem}" if key else problem
        super().__init__(f"{where}: {what}" + (f" ({hint})" if hint else ""))


# --------------------------------------------------------------------------- YAML with line numbers
Loc = tuple[str | int, ...]


def _parse_marked(text: str, path: str) -> Any:
    """Parse playbook YAML into MarkedDict/MarkedList (dicts and lists that know their lines)."""
    try:
        data = parse_yaml(text, path, str_keys=True)
    except YamlFileError as exc:
        raise PlaybookError(path, exc.line, exc.key, exc.problem, exc.hint) from None
    if data is None:
        raise PlaybookError(path, 1, None, "the file is empty", "start from the built-in system-state-backup playbook")
    return data


def _raise_validation(exc: ValidationError, path: str, root: Any, prefix: Loc = ()) -> None:
    err = exc.errors()[0]
    loc: Loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
    msg = err["msg"].removeprefix("Value error, ")
    hint = ""
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        hint = "check the spelling; `fleetcheck explain CHECK_ID` lists a check's parameters"
    elif err["type"] == "missing":
        msg = "required key is missing"
    raise PlaybookError(path, line_of(root, loc), ".".join(map(str, loc)) or None, msg, hint) from None


# --------------------------------------------------------------------------- models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _CheckEntry(_Strict):
    enabled: bool = True
    severity: Severity | None = None
    tags: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    remediate: bool = False
    remedy: dict[str, Any] = Field(default_factory=dict)


class CheckSettings(BaseModel):
    """One built-in check as a playbook configures it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    enabled: bool = True
    severity: Severity = "medium"
    tags: list[str] = Field(default_factory=list)
    params: Any = None  # the check's validated CheckParams model
    #: `fleetcheck fix --apply` may change this check's failures (off unless the playbook says so).
    remediate: bool = False
    remedy: Any = None  # the remedy's validated RemedyOptions model (None: the check has no remedy)


class CustomCheck(_Strict):
    """A user's own check: a script printing JSON and the expectations its output must meet."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(default="", max_length=200)
    description: str = ""
    remediation: str = ""
    enabled: bool = True
    severity: Severity = "medium"
    tags: list[str] = Field(default_factory=list)
    script: str = Field(min_length=1, max_length=MAX_SCRIPT)
    expect: list[Expectation] = Field(min_length=1)
    status_on_failure: Literal["fail", "warn"] = "fail"

    @field_validator("expect", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class _PlaybookFile(_Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    #: `warn`: a host reached with Negotiate or Kerberos that authenticated with NTLM gets a warning.
    ntlm_fallback: Literal["ignore", "warn"] = "ignore"
    extends: str | None = Field(default=None, min_length=1, max_length=1000)
    checks: dict[str, Any] = Field(default_factory=dict)
    custom_checks: list[dict[str, Any]] = Field(default_factory=list)


class Playbook(BaseModel):
    """A loaded, validated playbook."""

    name: str
    description: str = ""
    source: str = ""
    checks: dict[str, CheckSettings] = Field(default_factory=dict)
    custom_checks: list[CustomCheck] = Field(default_factory=list)
    ntlm_fallback: Literal["ignore", "warn"] = "ignore"

    def enabled_checks(self) -> list[CheckSettings]:
        return [c for c in self.checks.values() if c.enabled]

    def enabled_custom_checks(self) -> list[CustomCheck]:
        return [c for c in self.custom_checks if c.enabled]

    def check_ids(self) -> list[str]:
        """Every check id this playbook reports on (built-in and custom, enabled or not)."""
        return [*self.checks, *(c.id for c in self.custom_checks)]

    def probe_requests(self) -> dict[str, dict[str, Any]]:
        """Probe id → parameters, merged over every enabled check (one request per probe)."""
        requests: list[dict[str, dict[str, Any]]] = [
            CHECKS[c.id].requests(c.params) for c in self.enabled_checks()
        ]
        customs = self.enabled_custom_checks()
        if customs:
            requests.append({"custom": {"scripts": [{"id": c.id, "script": c.script} for c in customs]}})
        merged: dict[str, dict[str, Any]] = {}
        for req in requests:
            merged = _merge_requests(merged, req)
        return merged


# --------------------------------------------------------------------------- request merging
def _merge_value(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge_value(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        merged = list(a)
        seen = {json.dumps(x, sort_keys=True) for x in a}
        for x in b:
            key = json.dumps(x, sort_keys=True)
            if key not in seen:
                seen.add(key)
                merged.append(x)
        return merged
    if isinstance(a, bool) and isinstance(b, bool):
        return a or b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return max(a, b)
    return a


def _coalesce_events(params: dict[str, Any]) -> dict[str, Any]:
    """Event queries on the same log/provider/ids become one, with the longest window."""
    queries = params.get("queries")
    if not isinstance(queries, list):
        return params
    by_key: dict[str, dict[str, Any]] = {}
    for q in queries:
        key = json.dumps([q.get("log"), q.get("provider"), sorted(q.get("ids") or [])])
        if key in by_key:
            by_key[key] = _merge_value(by_key[key], {k: v for k, v in q.items() if k != "ids"})
        else:
            by_key[key] = dict(q)
    return {**params, "queries": list(by_key.values())}


def _merge_requests(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = dict(a)
    for probe, params in b.items():
        out[probe] = _merge_value(out[probe], params) if probe in out else dict(params)
        if probe == "events":
            out[probe] = _coalesce_events(out[probe])
    return out


def merge_probe_requests(playbooks: list[Playbook]) -> dict[str, dict[str, Any]]:
    """One probe request set for several playbooks run together on the same hosts."""
    merged: dict[str, dict[str, Any]] = {}
    for pb in playbooks:
        merged = _merge_requests(merged, pb.probe_requests())
    return merged


# --------------------------------------------------------------------------- loading
def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    return f"did you mean {', '.join(close)}?" if close else "run `fleetcheck checks` to list the check ids"


def _build_check(check_id: str, raw: Any, path: str, root: Any, base: CheckSettings | None = None) -> CheckSettings:
    """One `checks:` entry; with `base` (the extended playbook's), only the keys given override it."""
    if check_id not in CHECKS:
        raise PlaybookError(path, line_of(root, ("checks", check_id)), f"checks.{check_id}", "unknown check id", _suggest(check_id, CHECK_ORDER))
    cdef = CHECKS[check_id]
    if raw is None or isinstance(raw, bool):
        raw = {"enabled": raw is not False}
    if not isinstance(raw, dict):
        raise PlaybookError(
            path, line_of(root, ("checks", check_id)), f"checks.{check_id}", "expected a mapping (enabled, severity, tags, params), true/false or nothing"
        )
    try:
        entry = _CheckEntry.model_validate(raw)
    except ValidationError as exc:
        _raise_validation(exc, path, root, ("checks", check_id))
        raise  # unreachable
    given = {**(base.params.model_dump(exclude_unset=True) if base else {}), **entry.params}
    try:
        params: CheckParams = cdef.params.model_validate(given)
    except ValidationError as exc:
        _raise_validation(exc, path, root, ("checks", check_id, "params"))
        raise  # unreachable
    default_tags = base.tags if base else list(cdef.tags)
    _check_probe_requests(cdef.requests(params), path, line_of(root, ("checks", check_id, "params")), f"checks.{check_id}.params")
    return CheckSettings(
        id=check_id,
        enabled=entry.enabled if "enabled" in raw or base is None else base.enabled,
        severity=entry.severity or (base.severity if base else cdef.severity),
        tags=list(entry.tags) if entry.tags is not None else list(default_tags),
        params=params,
        remediate=entry.remediate if "remediate" in raw or base is None else base.remediate,
        remedy=_build_remedy(check_id, entry, path, root) if "remedy" in raw or base is None else base.remedy,
    )


def _build_remedy(check_id: str, entry: _CheckEntry, path: str, root: Any) -> Any:
    """The remedy options of a check; `remediate`/`remedy` on a check without a remedy is an error."""
    from fleetcheck.remedies import NO_SAFE_FIX, REMEDIES

    rdef = REMEDIES.get(check_id)
    if rdef is None:
        if entry.remediate or entry.remedy:
            key = "remediate" if entry.remediate else "remedy"
            why = NO_SAFE_FIX.get(check_id, "it has no remedy")
            raise PlaybookError(path, line_of(root, ("checks", check_id, key)), f"checks.{check_id}.{key}",
                                f"this check has no automatic fix ({why})", "remove the key; fix this by hand")
        return None
    try:
        return rdef.options.model_validate(entry.remedy)
    except ValidationError as exc:
        _raise_validation(exc, path, root, ("checks", check_id, "remedy"))
        raise  # unreachable


#: `extends:` chains longer than this are refused (and catch a playbook extending itself).
MAX_EXTENDS_DEPTH = 5


def _base_playbook(raw: _PlaybookFile, path: str, root: Any, depth: int) -> Playbook | None:
    """The playbook named by `extends:` (a built-in name, or a path relative to this file)."""
    if raw.extends is None:
        return None
    where = line_of(root, ("extends",))
    if depth >= MAX_EXTENDS_DEPTH:
        raise PlaybookError(path, where, "extends", f"more than {MAX_EXTENDS_DEPTH} playbooks deep", "does a playbook extend itself?")
    target: str | Path = raw.extends
    if _looks_like_path(raw.extends) and not Path(raw.extends).is_absolute() and Path(path).parent.is_dir():
        target = Path(path).parent / raw.extends
    try:
        return load_playbook(target, _depth=depth + 1)
    except PlaybookError as exc:
        raise PlaybookError(path, where, "extends", f"cannot use {raw.extends!r}: {exc}") from None


def parse_playbook(text: str, path: str = "<playbook>", _depth: int = 0) -> Playbook:
    """Validate playbook YAML text; raises PlaybookError.

    With `extends: NAME|PATH` the playbook starts from that one's checks (enabled, severities,
    tags, parameters and custom checks) and changes only what it names.
    """
    data = _parse_marked(text, path)
    if not isinstance(data, dict):
        raise PlaybookError(path, 1, None, "the top level must be a mapping (name:, checks:, ...)")
    try:
        raw = _PlaybookFile.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, path, data)
        raise  # unreachable
    base = _base_playbook(raw, path, data, _depth)
    checks = dict(base.checks) if base else {}
    for cid, entry in raw.checks.items():
        checks[cid] = _build_check(cid, entry, path, data, checks.get(cid))
    customs: list[CustomCheck] = list(base.custom_checks) if base else []
    for i, item in enumerate(raw.custom_checks):
        try:
            custom = CustomCheck.model_validate(item)
        except ValidationError as exc:
            _raise_validation(exc, path, data, ("custom_checks", i))
            raise  # unreachable
        if custom.id in CHECKS or custom.id in checks or any(c.id == custom.id for c in customs):
            raise PlaybookError(
                path, line_of(data, ("custom_checks", i, "id")), f"custom_checks[{i}].id", f"id {custom.id!r} is already used", "give the custom check its own id, e.g. custom-..."
            )
        customs.append(custom)
    if not checks and not customs:
        raise PlaybookError(path, line_of(data, ("checks",)), "checks", "the playbook has no checks", "list at least one check id")
    description = raw.description or (base.description if base else "")
    inherited = "ntlm_fallback" not in raw.model_fields_set and base is not None
    playbook = Playbook(
        name=raw.name, description=description, source=path, checks=checks, custom_checks=customs,
        ntlm_fallback=base.ntlm_fallback if inherited and base is not None else raw.ntlm_fallback,
    )
    _check_probe_requests(playbook.probe_requests(), path, line_of(data, ("checks",)), "checks")
    return playbook


def _check_probe_requests(requests: Mapping[str, Any], path: str, line: int | None, key: str) -> None:
    """What `run` will send must be valid at load, so `checks` and `run` accept the same playbooks."""
    from fleetcheck.probes.bundle import BundleError, build_bundle

    try:
        build_bundle(requests)
    except BundleError as exc:
        raise PlaybookError(path, line, key, f"cannot be sent to the hosts: {exc}", "shorten or fix the values") from None


def builtin_playbooks() -> list[str]:
    """Names of the playbooks shipped with fleetcheck."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yml"))


def _looks_like_path(name_or_path: str) -> bool:
    return any(sep in name_or_path for sep in "/\\") or name_or_path.endswith((".yml", ".yaml"))


def load_playbook(name_or_path: str | Path, _depth: int = 0) -> Playbook:
    """A built-in playbook by name (`system-state-backup`) or a playbook file by path."""
    text_name = str(name_or_path)
    path = Path(name_or_path)
    if not _looks_like_path(text_name) and not path.is_file():
        path = BUILTIN_DIR / f"{text_name}.yml"
        if not path.is_file():
            raise PlaybookError(text_name, None, None, "no such built-in playbook", f"built-in: {', '.join(builtin_playbooks())}; or give a file path")
    try:
        text = read_text(path, max_bytes=MAX_PLAYBOOK_BYTES)
    except YamlFileError as exc:
        raise PlaybookError(str(path), exc.line, None, exc.problem, exc.hint) from None
    return parse_playbook(text, str(path), _depth)
