"""`fleetcheck inventory`: what an inventory resolves to, with every secret redacted."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr
from tabulate import tabulate

from fleetcheck.inventory.ansible import MAPPED
from fleetcheck.inventory.loader import Inventory
from fleetcheck.inventory.model import Host

REDACTED = "********"
SECRET_HINTS = ("pass", "secret", "token", "credential", "apikey", "api_key")
MAX_GROUP_MEMBERS_SHOWN = 8
MAX_PROVENANCE_HOSTS = 20


def secret_settings(inv: Inventory, name: str) -> set[str]:
    """Settings of a host that came from a vault (decrypted values stay secret wherever shown)."""
    out = set()
    for key, value in inv.connection_vars.get(name, {}).items():
        if isinstance(value, SecretStr):
            target = MAPPED[key][0] if key in MAPPED else ("transport" if key == "ansible_connection" else key)
            out.add(target.partition(":")[2] or target)
    return out


def skipped_summary(skipped: dict[str, str]) -> str | None:
    """One line for every host left out: '12 hosts skipped: not Windows remoting (local 1, ssh with sh 11); ...'."""
    if not skipped:
        return None
    counts: dict[str, int] = {}
    for reason in skipped.values():
        counts[reason] = counts.get(reason, 0) + 1
    kinds = ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = len(skipped)
    return f"{total} host{'s' if total != 1 else ''} skipped: not Windows remoting ({kinds}); --show-skipped to list"


def render_skipped(skipped: dict[str, str]) -> str:
    rows = [[name, reason] for name, reason in skipped.items()]
    return tabulate(rows, headers=["Skipped host", "Why (Ansible would connect by)"], tablefmt="simple") + "\n"


def render_provenance(provenance: Mapping[str, dict[str, str]], hosts: list[Host]) -> list[str]:
    """Per host, the Ansible variable and file:line each effective setting came from."""
    lines = []
    shown = [h for h in hosts if provenance.get(h.name)]
    for host in shown[:MAX_PROVENANCE_HOSTS]:
        parts = [f"{key} <- {origin}" for key, origin in sorted(provenance[host.name].items())]
        lines.append(f"{host.name}: " + "; ".join(parts))
    if len(shown) > MAX_PROVENANCE_HOSTS:
        lines.append(f"... and {len(shown) - MAX_PROVENANCE_HOSTS} more hosts (narrow with --limit, or use --json)")
    if lines:
        lines = ["Where settings came from (others are fleetcheck's defaults, or follow from these):", *lines, ""]
    return lines


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


def render_inventory(inv: Inventory, hosts: list[Host], *, show_skipped: bool = True) -> str:
    rows = []
    for h in hosts:
        vaulted = secret_settings(inv, h.name)
        tls = "-" if h.transport == "ssh" or h.scheme == "http" else ("validate" if h.cert_validation else "IGNORE")
        if h.ca_path and tls == "validate":
            tls = f"ca:{h.ca_path}"
        rows.append(
            [
                h.name,
                REDACTED if "address" in vaulted else h.address,
                h.transport,
                h.scheme if h.transport != "ssh" else "-",
                h.effective_port,
                h.auth,
                REDACTED if "username" in vaulted else (h.username or "-"),
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
    lines += render_provenance(inv.provenance, hosts)
    if inv.skipped:
        lines += [render_skipped(inv.skipped) if show_skipped else (skipped_summary(inv.skipped) or ""), ""]
    custom = [(h.name, redact_vars(h.vars)) for h in hosts if h.vars]
    if custom:
        lines += [f"Custom vars: {name}: {values}" for name, values in custom[:20]] + [""]
    playbooks = ", ".join(inv.playbooks) or "(none named; the default playbook runs)"
    skipped = f" ({len(inv.skipped)} skipped)" if inv.skipped else ""
    lines.append(f"{len(hosts)} of {len(inv.hosts)} hosts{skipped}, {inv.fmt} format, playbooks: {playbooks}")
    if inv.waivers:
        lines.append(f"waivers: {inv.waivers}")
    return "\n".join(lines) + "\n"
