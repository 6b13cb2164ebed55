"""Service checks: the services system state backup depends on, by service name (never display name)."""

from __future__ import annotations

from pydantic import Field

from fleetcheck.checks.base import CheckDef, CheckParams, EvalContext, Facts, Verdict, failed, passed, warned
from fleetcheck.probes.schema import ServicesData


class AutoServiceParams(CheckParams):
    """A service that must start automatically and be running."""

    service: str = Field(min_length=1, max_length=256)


class ManualServiceParams(CheckParams):
    """A demand-start service: stopped is normal, Disabled is not."""

    service: str = Field(min_length=1, max_length=256)
    start_modes: list[str] = Field(default_factory=lambda: ["Manual"], min_length=1)


def auto_service(facts: Facts, p: AutoServiceParams, ctx: EvalContext) -> Verdict:
    svc = facts.get("services", ServicesData).get(p.service)
    expected = "Auto, Running"
    if svc is None or not svc.present:
        return failed(f"Service {p.service} does not exist", observed="missing", expected=expected)
    observed = f"{svc.start_mode}, {svc.state}"
    if svc.start_mode != "Auto":
        return failed(f"Service {p.service} starts {svc.start_mode or 'unknown'}, not Automatic", observed, expected)
    if svc.state != "Running":
        return failed(
            f"Service {p.service} is {svc.state or 'not running'}",
            observed,
            expected,
            remediation=f"Start-Service {p.service}; if it stops again, read the System event log for the reason.",
        )
    return passed(f"Service {p.service} is automatic and running", observed, expected)


def manual_service(facts: Facts, p: ManualServiceParams, ctx: EvalContext) -> Verdict:
    svc = facts.get("services", ServicesData).get(p.service)
    expected = " or ".join(p.start_modes) + " (stopped is fine)"
    if svc is None or not svc.present:
        return failed(f"Service {p.service} does not exist", observed="missing", expected=expected)
    observed = f"{svc.start_mode}, {svc.state}"
    if svc.start_mode == "Disabled":
        return failed(f"Service {p.service} is disabled", observed, expected)
    if svc.start_mode not in p.start_modes:
        return warned(
            f"Service {p.service} starts {svc.start_mode}; the usual setting is {p.start_modes[0]}",
            observed,
            expected,
            remediation=f"Set-Service {p.service} -StartupType Manual",
        )
    return passed(f"Service {p.service} starts {svc.start_mode} and can run on demand", observed, expected)


def _auto(check_id: str, service: str, title: str, why: str) -> CheckDef:
    params = type(f"{service}Params", (AutoServiceParams,), {"__annotations__": {"service": str}, "service": service})
    return CheckDef(
        id=check_id,
        title=title,
        family="services",
        rule=auto_service,
        params=params,
        requests=lambda p: {"services": {"names": [p.service]}},
        severity="high",
        tags=("services",),
        verifies=f"Service {service} has start mode Automatic and is running.",
        why=why,
        fix=f"Set-Service {service} -StartupType Automatic; Start-Service {service}",
    )


def _manual(check_id: str, service: str, title: str, why: str) -> CheckDef:
    params = type(f"{service}Params", (ManualServiceParams,), {"__annotations__": {"service": str}, "service": service})
    return CheckDef(
        id=check_id,
        title=title,
        family="services",
        rule=manual_service,
        params=params,
        requests=lambda p: {"services": {"names": [p.service]}},
        severity="high",
        tags=("services", "vss"),
        verifies=f"Service {service} has start mode Manual (demand start) and is not Disabled; being stopped is normal.",
        why=why,
        fix=f"Set-Service {service} -StartupType Manual (it starts by itself when a shadow copy is made).",
    )


CHECKS = [
    _auto(
        "service-rpcss",
        "RpcSs",
        "RPC service automatic and running",
        "Every COM and VSS call of a backup goes through RPC; without it nothing else works.",
    ),
    _auto(
        "service-eventsystem",
        "EventSystem",
        "COM+ Event System automatic and running",
        "VSS writers are notified through COM+ events; a stopped event system leaves writers out of the snapshot.",
    ),
    _auto(
        "service-sens",
        "SENS",
        "System Event Notification automatic and running",
        "SENS delivers system events that the COM+ event system and VSS rely on during a backup.",
    ),
    _manual(
        "service-vss",
        "VSS",
        "Volume Shadow Copy service startable",
        "System state backup is a shadow copy; a disabled VSS service makes every snapshot fail.",
    ),
    _manual(
        "service-swprv",
        "swprv",
        "Software shadow copy provider startable",
        "The built-in software provider creates the shadow copies WSB uses; disabled, no snapshot can be taken.",
    ),
]
