"""The `--faults` grammar: TARGET:KIND[=VALUE][@ON][#NTH][%PROB][/PROBE] into `FaultRule`s.

Parsing is pure and separate from serving so the CLI can reject a typo before any socket is
bound, and tests can pin the grammar without a fleet.
"""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass
from typing import Any

from fleetcheck.lab.fleetmodel import FleetConfigError
from fleetcheck.lab.host import FaultSpec

FAULTS_HELP = """\
Faults: comma-separated RULEs, each TARGET:KIND[=VALUE][@ON][#NTH][%PROB][/PROBE]
  TARGET  host name or glob (LAB-0003, LAB-00*, *)
  KIND    latency jitter hang reset refuse http401 http500 malformed encrypt_garbage optimeout
          tls_bad_cert cbt_mismatch broken_pool slow_output oversized_output bad_json probe_throws ...
  =VALUE  seconds (latency, jitter, slow_output), bytes (oversized_output), the WSMan fault code
          (http500), or untrusted|wrong_name (tls_bad_cert)
  @ON     where it fires: a WSMan action (Create Command Send Receive Signal Delete Get), auth,
          connect or script; default * (everywhere)
  #NTH    only the NTH matching request (default: every one)
  %PROB   fire with this probability 0..1 (seeded per host)
  /PROBE  the probe id, for probe-level faults; for remedy_throws, remedy_denied and remedy_hang
          (the fix step alone) a check id or remedy action, e.g. LAB-0002:remedy_denied/svi-permission
Example: "LAB-0003:hang@Receive,LAB-0004:refuse,LAB-0005:http500=2150859173@Create#1,*:latency=0.05"
"""

WSMAN_ACTIONS = ("Create", "Command", "Send", "Receive", "Signal", "Delete", "Get")
_ON_NAMES = {n.lower(): n for n in (*WSMAN_ACTIONS, "auth", "connect", "script", "*")}
_KIND_ALIASES = {"probe_throw": "probe_throws", "throw": "probe_throws", "tls_untrusted": "tls_bad_cert"}
#: Kinds handled by the fleet itself (binding, TLS, pool) rather than by a protocol layer.
_EXTRA_KINDS = ("jitter", "tls_bad_cert", "cbt_mismatch", "broken_pool", "shell_quota", "refuse")


def known_fault_kinds() -> set[str]:
    """Every kind some layer acts on: the fleet's own plus each `*_KINDS` list in lab.faults."""
    kinds = set(_EXTRA_KINDS)
    with contextlib.suppress(ImportError):
        from fleetcheck.lab import faults

        for attr in dir(faults):
            if attr.endswith("_KINDS"):
                kinds.update(getattr(faults, attr))
    return kinds


@dataclass(frozen=True)
class FaultRule:
    """`target` (host glob) gets `spec`."""

    target: str
    spec: FaultSpec

    def applies_to(self, host_name: str) -> bool:
        return fnmatch.fnmatchcase(host_name.upper(), self.target.upper())


def always_refused(spec: FaultSpec) -> bool:
    """A host that refuses every connection: it is given no listener at all, only a bound port."""
    return spec.kind == "refuse" and spec.on in ("*", "connect") and not spec.nth and spec.probability is None


def _split_markers(text: str) -> dict[str, str]:
    """KIND=VALUE@ON#NTH%PROB/PROBE -> parts by marker (markers may come in any order)."""
    parts: dict[str, str] = {}
    key = ""
    buf: list[str] = []
    for ch in text:
        if key != "/" and ch in "=@#%/":
            if ch in parts or (ch == key):
                raise FleetConfigError(f"marker {ch!r} given twice")
            parts[key] = "".join(buf)
            key, buf = ch, []
        else:
            buf.append(ch)
    parts[key] = "".join(buf)
    return parts


def _kind(text: str, kind_text: str) -> str:
    kind = _KIND_ALIASES.get(kind_text, kind_text)
    known = known_fault_kinds()
    if kind not in known:
        raise FleetConfigError(f"fault {text!r}: unknown kind {kind_text!r}; known kinds: {', '.join(sorted(known))}")
    return kind


def _value(kind: str, kind_text: str, raw: str | None) -> dict[str, Any]:
    """The =VALUE part, typed by kind (a WSMan code for http500, a TLS flavour, else a float)."""
    if kind_text == "tls_untrusted" and raw is None:
        return {"value": 1.0}
    if raw is None:
        return {}
    if kind == "tls_bad_cert":
        if raw not in ("untrusted", "wrong_name"):
            raise ValueError("tls_bad_cert takes untrusted or wrong_name")
        return {"value": 1.0 if raw == "untrusted" else 0.0}
    if kind == "http500":
        return {"code": int(raw)}
    return {"value": float(raw)}


def _qualifiers(parts: dict[str, str]) -> dict[str, Any]:
    """The @ON, #NTH, %PROB and /PROBE parts, each checked against its range."""
    spec: dict[str, Any] = {}
    if "@" in parts:
        on = _ON_NAMES.get(parts["@"].strip().lower())
        if on is None:
            raise ValueError(f"@ON must be one of {', '.join(_ON_NAMES.values())}")
        spec["on"] = on
    if "#" in parts:
        spec["nth"] = int(parts["#"])
        if spec["nth"] < 1:
            raise ValueError("#NTH counts from 1")
    if "%" in parts:
        spec["probability"] = float(parts["%"])
        if not 0.0 <= spec["probability"] <= 1.0:
            raise ValueError("%PROB must be between 0 and 1")
    if "/" in parts:
        spec["probe"] = parts["/"].strip()
    return spec


def parse_fault_rule(text: str) -> FaultRule:
    """One TARGET:KIND... rule; every mistake names the rule as typed."""
    target, sep, body = text.strip().partition(":")
    if not sep or not target.strip() or not body.strip():
        raise FleetConfigError(f"fault {text!r}: expected TARGET:KIND, e.g. LAB-0003:hang@Receive")
    try:
        parts = _split_markers(body.strip())
    except FleetConfigError as exc:
        raise FleetConfigError(f"fault {text!r}: {exc}") from None
    kind_text = parts[""].strip().lower()
    kind = _kind(text, kind_text)
    try:
        spec = {"kind": kind, **_value(kind, kind_text, parts.get("=")), **_qualifiers(parts)}
    except ValueError as exc:
        raise FleetConfigError(f"fault {text!r}: {exc}") from None
    return FaultRule(target=target.strip(), spec=FaultSpec(**spec))


def parse_faults(text: str) -> list[FaultRule]:
    """The `--faults` grammar (see FAULTS_HELP)."""
    return [parse_fault_rule(item) for item in text.split(",") if item.strip()]


def latency_rules(latency_ms: float) -> list[FaultRule]:
    """`--latency-ms` as rules: per WSMan request, per HTTP authentication leg and per SSH
    command (not per script).

    Appended after the user's rules: the first matching spec fires, so a host's own latency
    rule takes precedence.
    """
    if not latency_ms:
        return []
    return [
        FaultRule("*", FaultSpec(kind="latency", on=action, value=latency_ms / 1000.0))
        for action in (*WSMAN_ACTIONS, "auth")
    ]
