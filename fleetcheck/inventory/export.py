"""`fleetcheck inventory --json`: the resolved inventory as data, shaped like `ansible-inventory --list`.

Top-level keys are groups (`hosts` named directly in them, `children`), `_meta.hostvars` holds
each checked host's effective settings, the Ansible connection variables that produced them and
where each came from; `_meta.skipped` the hosts left out with the reason. Secrets print as
`********`, never their value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from fleetcheck.inventory.loader import Inventory
from fleetcheck.inventory.show import REDACTED, redact_vars, secret_settings


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def inventory_json(inv: Inventory) -> dict[str, Any]:
    hostvars: dict[str, Any] = {}
    for host in inv.hosts:
        settings = host.model_dump(exclude={"password", "vars", "groups"})
        settings["password"] = REDACTED if host.password is not None else None
        settings["port"] = host.effective_port
        for field in secret_settings(inv, host.name) & set(settings):
            settings[field] = REDACTED
        hostvars[host.name] = {
            "fleetcheck": _plain(settings),
            "ansible_vars": _plain(inv.connection_vars.get(host.name, {})),
            "vars": _plain(redact_vars(host.vars)),
            "provenance": inv.provenance.get(host.name, {}),
        }
    out: dict[str, Any] = {"_meta": {"hostvars": hostvars, "skipped": dict(inv.skipped), "format": inv.fmt,
                                     "warnings": list(inv.warnings)}}
    if inv.children or inv.direct:
        for group in dict.fromkeys([*inv.children, *inv.direct]):
            body: dict[str, Any] = {}
            if inv.direct.get(group) and group != "all":  # as Ansible: hosts of `all` alone are in ungrouped
                body["hosts"] = list(inv.direct[group])
            if inv.children.get(group):
                body["children"] = list(inv.children[group])
            out[group] = body
    else:  # the native format: groups with all their members
        out["all"] = {"hosts": [h.name for h in inv.hosts]}
        for group, members in inv.groups.items():
            out[group] = {"hosts": list(members)}
    return out
