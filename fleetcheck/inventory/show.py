"""`fleetcheck inventory`: what an inventory resolves to, with every secret redacted."""

from __future__ import annotations

from tabulate import tabulate

from fleetcheck.inventory.loader import Inventory
from fleetcheck.inventory.model import Host

SECRET_HINTS = ("pass", "secret", "token", "credential", "apikey", "api_key")
MAX_GROUP_MEMBERS_SHOWN = 8


def password_source(host: Host) -> str:
    """Where the password will come from, never the password itself."""
    if host.password is not None:
        return "inline (redacted)"
    if host.password_env:
        return f"env:{host.password_env}"
    if host.auth in ("kerberos", "negotiate"):
        if host.kerberos_keytab:
            return f"keytab:{host.kerberos_keytab}"
        if host.kerberos_ccache:
            return f"ticket cache:{host.kerberos_ccache}"
        return "ticket cache / none"
    if host.auth == "certificate":
        return f"cert:{host.cert_path}"
    if host.auth == "key":
        return "-"
    return "--ask-pass"


def redact_vars(values: dict[str, object]) -> dict[str, object]:
    return {k: ("********" if any(h in k.lower() for h in SECRET_HINTS) else v) for k, v in values.items()}


def render_inventory(inv: Inventory, hosts: list[Host]) -> str:
    rows = []
    for h in hosts:
        tls = "-" if h.transport == "ssh" or h.scheme == "http" else ("validate" if h.cert_validation else "IGNORE")
        if h.ca_path and tls == "validate":
            tls = f"ca:{h.ca_path}"
        rows.append(
            [
                h.name,
                h.address,
                h.transport,
                h.scheme if h.transport != "ssh" else "-",
                h.effective_port,
                h.auth,
                h.username or "-",
                password_source(h),
                tls,
                f"{h.timeout:g}",
                ",".join(h.groups) or "-",
                ",".join(h.tags) or "-",
            ]
        )
    headers = ["Host", "Address", "Transport", "Scheme", "Port", "Auth", "User", "Password", "TLS", "Timeout",
               "Groups", "Tags"]
    lines = [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True), ""]
    names = {h.name for h in hosts}
    if inv.groups:
        group_rows = []
        for group, members in inv.groups.items():
            selected = [m for m in members if m in names]
            shown = ", ".join(selected[:MAX_GROUP_MEMBERS_SHOWN])
            if len(selected) > MAX_GROUP_MEMBERS_SHOWN:
                shown += f" +{len(selected) - MAX_GROUP_MEMBERS_SHOWN} more"
            group_rows.append([group, len(selected), shown])
        lines += [tabulate(group_rows, headers=["Group", "Hosts", "Members"], tablefmt="simple"), ""]
    custom = [(h.name, redact_vars(h.vars)) for h in hosts if h.vars]
    if custom:
        lines += [f"Custom vars: {name}: {values}" for name, values in custom[:20]] + [""]
    playbooks = ", ".join(inv.playbooks) or "(none named; the default playbook runs)"
    lines.append(f"{len(hosts)} of {len(inv.hosts)} hosts, {inv.fmt} format, playbooks: {playbooks}")
    if inv.waivers:
        lines.append(f"waivers: {inv.waivers}")
    return "\n".join(lines) + "\n"
