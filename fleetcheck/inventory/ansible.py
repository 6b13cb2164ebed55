"""Read an Ansible YAML inventory as it is: map the connection variables we support, name the rest.

`fleetcheck_<key>` variables (for example `fleetcheck_password_env`) set any native key, so a
team can keep one inventory for both tools.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.hostrange import MAX_HOSTS, count_range, expand_host_pattern
from fleetcheck.inventory.settings import HostSettings, ParsedInventory, Settings, validation_to_error
from fleetcheck.yamlfile import MarkedDict, VaultValue, line_of

GROUP_KEYS = ("hosts", "children", "vars")
MAX_GROUP_DEPTH = 32


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
    "ansible_host": ("address", str),
    "ansible_ssh_host": ("address", str),
    "ansible_port": ("port", lambda v: v),
    "ansible_ssh_port": ("port", lambda v: v),
    "ansible_user": ("username", str),
    "ansible_ssh_user": ("username", str),
    "ansible_password": ("password", str),
    "ansible_ssh_pass": ("password", str),
    "ansible_ssh_password": ("password", str),
    "ansible_winrm_password": ("password", str),
    "ansible_connection": ("transport", _connection),
    "ansible_winrm_transport": ("winrm:auth", _winrm_transport),
    "ansible_winrm_scheme": ("winrm:scheme", _scheme),
    "ansible_winrm_server_cert_validation": ("winrm:cert_validation", _cert_validation),
    "ansible_winrm_ca_trust_path": ("winrm:ca_path", str),
    "ansible_psrp_auth": ("psrp:auth", lambda v: str(v).strip().lower()),
    "ansible_psrp_protocol": ("psrp:scheme", _scheme),
    "ansible_psrp_cert_validation": ("psrp:cert_validation", _cert_validation),
    "ansible_psrp_ca_path": ("psrp:ca_path", str),
    "ansible_ssh_private_key_file": ("key_path", str),
    "ansible_ssh_host_key_checking": ("ssh:ssh_known_hosts", lambda v: "default" if _truthy(v) else "accept"),
    "ansible_host_key_checking": ("ssh:ssh_known_hosts", lambda v: "default" if _truthy(v) else "accept"),
    "ansible_private_key_file": ("key_path", str),
}
FLEETCHECK_PREFIX = "fleetcheck_"


def map_vars(
    raw: Any, *, path: Path, root: Any, loc: list[Any], host: bool, ignored: set[str], warnings: list[str]
) -> dict[str, Any]:
    """One level of Ansible variables -> validated native settings (only keys that were set)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InventoryError(path, line_of(root, loc), ".".join(map(str, loc)), "expected a mapping of variables")
    mapped: dict[str, Any] = {}
    origin: dict[str, str] = {}
    custom: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        where = line_of(root, [*loc, key])
        if isinstance(value, VaultValue) or (isinstance(value, str) and "{{" in value):
            kind = "vault-encrypted" if isinstance(value, VaultValue) else "templated"
            warnings.append(
                f"{path}, line {where}: {kind} value of '{key}' ignored (fleetcheck does not run Jinja or "
                "decrypt vaults; use fleetcheck_password_env or --ask-pass)"
            )
            continue
        if key in MAPPED:
            target, convert = MAPPED[key]
            try:
                mapped[target] = convert(value)
            except ValueError as exc:
                raise InventoryError(path, where, key, str(exc)) from None
            origin[target] = key
        elif key.startswith(FLEETCHECK_PREFIX):
            target = key.removeprefix(FLEETCHECK_PREFIX)
            mapped[target] = value
            origin[target] = key
        elif key.startswith("ansible_"):
            ignored.add(key)
        else:
            custom[key] = value
    if custom:
        mapped["vars"] = {**custom, **mapped.get("vars", {})}
    model = HostSettings if host else Settings
    scoped = {k: mapped.pop(k) for k in list(mapped) if ":" in k}
    try:
        parsed = model.model_validate(mapped)
        checked = Settings.model_validate({k.partition(":")[2]: v for k, v in scoped.items()})
    except ValidationError as exc:
        renamed = MarkedDict(getattr(raw, "line", 0))
        source: dict[str, str] = {}
        for target, key in origin.items():
            plain = target.partition(":")[2] or target
            source[plain] = key
            renamed[plain] = raw[key]
            renamed.key_lines[plain] = getattr(raw, "key_lines", {}).get(key, renamed.line)
        error = validation_to_error(exc, renamed, path, [], sorted(model.model_fields))
        if error.key in source:
            error = InventoryError(path, error.line, source[error.key], error.problem, error.hint)
        raise error from None
    out = parsed.model_dump(exclude_unset=True)
    for key in scoped:
        out[key] = getattr(checked, key.partition(":")[2])
    return out


class _Walker:
    def __init__(self, root: Any, path: Path) -> None:
        self.root = root
        self.path = path
        self.inv = ParsedInventory(fmt="ansible")
        self.ignored: set[str] = set()

    def vars(self, raw: Any, loc: list[Any], host: bool) -> dict[str, Any]:
        return map_vars(
            raw, path=self.path, root=self.root, loc=loc, host=host, ignored=self.ignored, warnings=self.inv.warnings
        )

    def group(self, name: str, body: Any, loc: list[Any], parents: list[str], levels: list[dict[str, Any]]) -> None:
        if len(parents) >= MAX_GROUP_DEPTH:
            raise InventoryError(self.path, line_of(self.root, loc), name, "groups nest too deep (a cycle?)")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InventoryError(self.path, line_of(self.root, loc), name, "expected a group (hosts, children, vars)")
        for key in body:
            if key not in GROUP_KEYS:
                raise InventoryError(
                    self.path, line_of(self.root, [*loc, key]), f"{name}.{key}", "unknown key in an Ansible group",
                    "allowed: hosts, children, vars",
                )
        chain = [*parents, name] if name != "all" else parents
        if name != "all":
            self.inv.groups.setdefault(name, [])
        here = [*levels, self.vars(body.get("vars"), [*loc, "vars"], host=False)]
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise InventoryError(self.path, line_of(self.root, [*loc, "hosts"]), f"{name}.hosts", "expected a mapping")
        for host_key, entry in hosts.items():
            try:
                if len(self.inv.drafts) + count_range(str(host_key)) > MAX_HOSTS:
                    raise ValueError(f"the inventory would hold more than {MAX_HOSTS} hosts")
                names = expand_host_pattern(str(host_key))
            except ValueError as exc:
                raise InventoryError(self.path, line_of(self.root, [*loc, "hosts", host_key]), str(host_key), str(exc)) from None
            own = self.vars(entry, [*loc, "hosts", host_key], host=True)
            for host_name in names:
                self.inv.add_occurrence(host_name, line_of(self.root, [*loc, "hosts", host_key]), chain, here, own)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InventoryError(self.path, line_of(self.root, [*loc, "children"]), name, "children must be a mapping")
        for child, child_body in children.items():
            self.group(str(child), child_body, [*loc, "children", child], chain, here)


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


def parse_ansible(data: Any, path: Path) -> ParsedInventory:
    walker = _Walker(data, path)
    for name, body in data.items():
        walker.group(str(name), body, [name], [], [])
    if walker.ignored:
        walker.inv.warnings.append(
            f"{path}: ignored Ansible variables (fleetcheck does not use them): " + ", ".join(sorted(walker.ignored))
        )
    return walker.inv
