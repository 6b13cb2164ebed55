"""Fault selection: which of a host's `FaultSpec`s fires for this request.

The protocol layers ask `pick_fault(host, on, kinds)` at their own hook points (connect,
auth, each WSMan action, the engine's `script`), so one spec list drives every layer.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetcheck.lab.host import FaultSpec, LabHost

#: Faults the HTTP/WSMan layer applies per request.
REQUEST_KINDS = ("latency", "hang", "reset", "http401", "http500", "malformed", "encrypt_garbage", "optimeout")
#: Faults decided when a TCP connection arrives.
CONNECT_KINDS = ("refuse",)
#: Faults the engine applies per script.
SCRIPT_KINDS = ("slow_output", "hang", "oversized_output", "bad_json", "probe_throws", "latency")
#: Probe-level faults, answered by fleetcheck.lab.simprobes (FaultSpec.probe: a probe id or "*").
PROBE_KINDS = ("probe_error", "probe_denied")
#: Faults on the fix step alone, answered by fleetcheck.lab.remedies (FaultSpec.probe: a check id,
#: a remedy action or "*"): the change throws, is denied, or the whole remedy script hangs.
REMEDY_KINDS = ("remedy_throws", "remedy_denied", "remedy_hang")

#: WSMan fault codes worth naming (decimal, as WSManFault@Code carries them).
TIMED_OUT = 2150858793  # 0x80338029 w:TimedOut
INVALID_SELECTORS = 2150858843  # 0x8033805B unknown shell or command
SHELL_QUOTA = 2150859173  # 0x803381A5 MaxShellsPerUser exceeded
OPERATIONS_QUOTA = 2150859174  # 0x803381A6 MaxConcurrentOperationsPerUser exceeded
PROFILE_KEY_DELETED = 2147943418  # 0x800703FA registry key marked for deletion


def _matches(spec: FaultSpec, on: str, kinds: Iterable[str], exact: bool) -> bool:
    return spec.kind in kinds and ((spec.on == "*" and not exact) or spec.on.lower() == on.lower())


def pick_fault(host: LabHost, on: str, kinds: Iterable[str], *, exact: bool = False) -> FaultSpec | None:
    """The first matching spec that fires now; counts every match for `nth`.

    `exact` ignores `on: "*"` specs: for hook points that would otherwise apply a
    request-level fault a second time (e.g. latency in the engine, reset at connect)."""
    kinds = tuple(kinds)
    chosen: FaultSpec | None = None
    for index, spec in enumerate(host.faults):
        if not _matches(spec, on, kinds, exact):
            continue
        hits = host.fault_hits.get(index, 0) + 1
        host.fault_hits[index] = hits
        if chosen is not None:
            continue
        if spec.nth and hits != spec.nth:
            continue
        if spec.probability is not None and host.rng.random() >= spec.probability:
            continue
        chosen = spec
    return chosen


def jitter_seconds(host: LabHost, on: str) -> float:
    """Random extra delay from a `jitter` spec (uniform 0..value, seeded by the host)."""
    spec = pick_fault(host, on, ("jitter",))
    if spec is None or not spec.value:
        return 0.0
    return host.rng.uniform(0.0, float(spec.value))
