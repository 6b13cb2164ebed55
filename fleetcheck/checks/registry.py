"""The registry of built-in checks, keyed by the ids reports and users' automation depend on."""

from __future__ import annotations

from fleetcheck.checks import agent, backup, services, system, vss
from fleetcheck.checks.base import CheckDef

CHECKS: dict[str, CheckDef] = {c.id: c for module in (backup, services, agent, system, vss) for c in module.CHECKS}

#: Order of the checks as the issue lists them (tables and the built-in playbook follow it).
CHECK_ORDER = [
    "wsb-feature",
    "wsb-cmdlets",
    "wsb-last-job",
    "svi-permission",
    "service-rpcss",
    "service-eventsystem",
    "service-sens",
    "service-vss",
    "service-swprv",
    "mars-installed",
    "mars-version",
    "mars-service",
    "mars-connectivity",
    "mars-schedule",
    "scratch-space",
    "av-exclusions",
    "os-updates",
    "clock",
    "dotnet",
    "os-supported",
    "not-azure-vm",
    "azure-powershell",
    "vss-writers",
    "vss-timeout-events",
    "shadow-storage",
    "efi-lock-events",
]

assert set(CHECK_ORDER) == set(CHECKS), sorted(set(CHECK_ORDER) ^ set(CHECKS))
