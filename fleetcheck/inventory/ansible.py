"""The Ansible connection variables fleetcheck understands, and how each maps to a native key.

The sources in `inventory/sources/` read Ansible inventories; `sources/resolve.py` applies this
table to each host's merged variables. `fleetcheck_<key>` variables (for example
`fleetcheck_password_env`) set any native key, so a team can keep one inventory for both tools.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GROUP_KEYS = ("hosts", "children", "vars")


def _cert_validation(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("ignore", "false", "no", "0"):
        return False
    if text in ("validate", "true", "yes", "1"):
        return True
    raise ValueError("expected 'validate' or 'ignore'")


def _winrm_transport(value: Any) -> str:
    names = value if isinstance(value, list) else str(value).split(",")
    aliases = {"plaintext": "basic", "ssl": "basic"}
    for raw in names:
        name = aliases.get(str(raw).strip().lower(), str(raw).strip().lower())
        if name in ("negotiate", "ntlm", "kerberos", "basic", "credssp", "certificate"):
            return name
    raise ValueError("expected ntlm, kerberos, basic, credssp or certificate")


def _connection(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("winrm", "psrp", "ssh"):
        raise ValueError(f"connection '{value}' is not supported; fleetcheck speaks winrm, psrp and ssh")
    return text


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "yes", "1", "on")


def _scheme(value: Any) -> str:
    return str(value).strip().lower()


#: Ansible variable -> (native key, converter). `winrm:`/`psrp:` keys apply only to that transport.
MAPPED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # Generic first, then each connection plugin's own names, which win for that connection only
    # (the order of the `vars:` lists in Ansible's ssh, winrm and psrp plugins: later wins).
    "ansible_host": ("address", str),
    "ansible_ssh_host": ("ssh:address", str),
    "ansible_winrm_host": ("winrm:address", str),
    "ansible_psrp_host": ("psrp:address", str),
    "ansible_port": ("port", lambda v: v),
    "ansible_ssh_port": ("ssh:port", lambda v: v),
    "ansible_winrm_port": ("winrm:port", lambda v: v),
    "ansible_psrp_port": ("psrp:port", lambda v: v),
    "ansible_user": ("username", str),
    "ansible_ssh_user": ("ssh:username", str),
    "ansible_winrm_user": ("winrm:username", str),
    "ansible_psrp_user": ("psrp:username", str),
    "ansible_password": ("password", str),
    "ansible_ssh_pass": ("ssh:password", str),
    "ansible_ssh_password": ("ssh:password", str),
    "ansible_winrm_pass": ("winrm|psrp:password", str),  # the psrp plugin reads these two as well
    "ansible_winrm_password": ("winrm|psrp:password", str),
    "ansible_connection": ("transport", _connection),
    "ansible_winrm_transport": ("winrm:auth", _winrm_transport),
    "ansible_winrm_scheme": ("winrm:scheme", _scheme),
    "ansible_winrm_server_cert_validation": ("winrm:cert_validation", _cert_validation),
    "ansible_winrm_ca_trust_path": ("winrm:ca_path", str),
    "ansible_psrp_auth": ("psrp:auth", lambda v: str(v).strip().lower()),
    "ansible_psrp_protocol": ("psrp:scheme", _scheme),
    "ansible_psrp_cert_validation": ("psrp:cert_validation", _cert_validation),
    "ansible_psrp_ca_path": ("psrp:ca_path", str),
    "ansible_psrp_negotiate_hostname_override": ("psrp:negotiate_hostname_override", str),
    "ansible_psrp_negotiate_service": ("psrp:negotiate_service", lambda v: str(v).strip().upper()),
    "ansible_winrm_kerberos_hostname_override": ("winrm:negotiate_hostname_override", str),
    "ansible_winrm_service": ("winrm:negotiate_service", lambda v: str(v).strip().upper()),
    "ansible_psrp_certificate_pem": ("psrp:cert_path", str),
    "ansible_psrp_certificate_key_pem": ("psrp:key_path", str),
    "ansible_winrm_cert_pem": ("winrm:cert_path", str),
    "ansible_winrm_cert_key_pem": ("winrm:key_path", str),
    "ansible_private_key_file": ("key_path", str),
    "ansible_ssh_private_key_file": ("ssh:key_path", str),
    "ansible_ssh_host_key_checking": ("ssh:ssh_known_hosts", lambda v: "default" if _truthy(v) else "accept"),
    "ansible_host_key_checking": ("ssh:ssh_known_hosts", lambda v: "default" if _truthy(v) else "accept"),
}


def applies(target: str, transport: str) -> bool:
    """`winrm|psrp:password` applies to winrm and psrp hosts; an unscoped target to every host."""
    scope, sep, _ = target.partition(":")
    return not sep or transport in scope.split("|")
FLEETCHECK_PREFIX = "fleetcheck_"


def looks_like_ansible(data: Any) -> bool:
    """True for `all:` at the top, or top-level keys that are all groups (hosts/children/vars)."""
    if not isinstance(data, dict) or not data:
        return False
    if isinstance(data.get("all"), dict) and set(data["all"]) <= set(GROUP_KEYS):
        return True
    from fleetcheck.inventory.native import TOP_KEYS

    if set(data) <= set(TOP_KEYS):
        return False
    return all(v is None or (isinstance(v, dict) and set(v) <= set(GROUP_KEYS)) for v in data.values())
