"""From Ansible's inventory data to fleetcheck `Host`s: precedence, vault, templates, mapping, skips.

Each host's variables are merged by `Precedence`, vault values decrypted, templates rendered,
then the connection variables fleetcheck understands (`ansible.MAPPED`, `fleetcheck_<key>`) are
mapped and validated. Hosts Ansible would reach by other means than Windows remoting are
skipped with a reason, never guessed at. Warnings are counted per kind, not printed per host.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from fleetcheck.inventory.address import address_problem
from fleetcheck.inventory.ansible import FLEETCHECK_PREFIX, MAPPED, applies
from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.model import Host
from fleetcheck.inventory.settings import HostSettings, resolve_host
from fleetcheck.inventory.sources.base import Origin, RawInventory, Var, is_template
from fleetcheck.inventory.sources.precedence import Precedence
from fleetcheck.inventory.sources.vars_files import VarsFiles
from fleetcheck.inventory.vault import VaultError, VaultSecrets
from fleetcheck.yamlfile import VaultValue

WINDOWS_CONNECTIONS = {"winrm": "winrm", "psrp": "psrp", "ssh": "ssh", "paramiko": "ssh", "paramiko_ssh": "ssh"}
WINDOWS_SHELLS = ("powershell", "cmd")
PASSWORD_KEYS = frozenset(k for k, (t, _) in MAPPED.items() if t.rpartition(":")[2] == "password")
SHOWN_NAMES = 3


class Warnings:
    """Warnings grouped by kind: one line each, with a count and the first few host names."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[str]] = {}

    def add(self, kind: str, subject: str) -> None:
        subjects = self.kinds.setdefault(kind, [])
        if subject not in subjects:
            subjects.append(subject)

    def lines(self) -> list[str]:
        out = []
        for kind, subjects in self.kinds.items():
            if not subjects or subjects == [""]:
                out.append(kind)
                continue
            shown = ", ".join(subjects[:SHOWN_NAMES]) + (f" and {len(subjects) - SHOWN_NAMES} more" if len(subjects) > SHOWN_NAMES else "")
            out.append(f"{kind}: {len(subjects)} host{'s' if len(subjects) != 1 else ''} ({shown})")
        return out


class Provenance(Mapping[str, dict[str, str]]):
    """Host -> {setting: "ansible_key @ file:line"}, formatted only for the hosts someone looks at."""

    def __init__(self) -> None:
        self.raw: dict[str, tuple[str, dict[str, tuple[str, Origin]]]] = {}

    def add(self, host: Host, source: dict[str, tuple[str, Origin]]) -> None:
        self.raw[host.name] = (host.transport, source)

    def __getitem__(self, name: str) -> dict[str, str]:
        transport, source = self.raw[name]
        return {target.partition(":")[2] or target: f"{key} @ {origin}" for target, (key, origin) in source.items()
                if applies(target, transport)}

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass
class Resolved:
    """What the loader keeps: hosts to check, hosts skipped (with why), groups, origins, warnings."""

    hosts: list[Host]
    skipped: dict[str, str]
    groups: dict[str, list[str]]
    children: dict[str, list[str]]
    provenance: Mapping[str, dict[str, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: group -> hosts named directly in it (as `ansible-inventory --list` shows them).
    direct: dict[str, list[str]] = field(default_factory=dict)
    #: host -> the Ansible connection variables that decided its settings (rendered; secrets as SecretStr).
    connection_vars: dict[str, dict[str, Any]] = field(default_factory=dict)


def connection_of(values: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(fleetcheck transport, None) or (None, reason to skip), from ansible_connection and shell type."""
    forced = values.get(FLEETCHECK_PREFIX + "transport")
    if forced is not None:
        return str(forced), None
    raw = values.get("ansible_connection")
    shell = str(values.get("ansible_shell_type") or "sh")
    name = str(raw).strip().lower().rsplit(".", 1)[-1] if raw is not None else "ssh"
    transport = WINDOWS_CONNECTIONS.get(name)
    if transport is None:
        return None, name
    if transport == "ssh" and shell not in WINDOWS_SHELLS:
        return None, f"{name} with {shell}" if raw is not None else f"no ansible_connection (ssh with {shell})"
    return transport, None


class Resolver:
    """One pass over the hosts: merge, decide checkable or skipped, map and validate; warnings counted."""

    def __init__(self, inv: RawInventory, files: VarsFiles, secrets: VaultSecrets) -> None:
        self.inv = inv
        self.secrets = secrets
        self.precedence = Precedence(inv, files)
        self.members = self.precedence.members()
        self.warn = Warnings()
        self.clear_passwords: dict[str, int] = {}
        self.ignored: set[str] = set()
        self.connection_vars: dict[str, dict[str, Any]] = {}
        self.templates: dict[Any, Host] = {}

    def run(self) -> Resolved:
        hosts: list[Host] = []
        skipped: dict[str, str] = {}
        provenance = Provenance()
        for name in self.inv.hosts:
            merged = self.precedence.host_vars(name)
            values = {key: var.value for key, var in merged.items()}
            transport, reason = connection_of(self.deciding(name, merged, values))
            if transport is None:
                skipped[name] = reason or "not Windows remoting"
                continue
            host, source = self.host(name, merged, values)
            hosts.append(host)
            provenance.add(host, source)
        lines = []
        for path, count in self.clear_passwords.items():
            lines.append(f"{path}: a password is written in clear for {count} host{'s' if count != 1 else ''}; "
                         "prefer fleetcheck_password_env, --ask-pass or ansible-vault")
        if self.ignored:
            lines.append("ignored Ansible variables (fleetcheck does not use them): " + ", ".join(sorted(self.ignored)))
        groups = {g: m for g, m in self.members.items() if g != "all"}
        children = {g.name: list(g.children) for g in self.inv.groups.values()}
        direct = {g.name: list(g.hosts) for g in self.inv.groups.values()}
        return Resolved(hosts, skipped, groups, children, provenance, [*lines, *self.warn.lines()], direct,
                        self.connection_vars)

    def deciding(self, name: str, merged: dict[str, Var], values: dict[str, Any]) -> dict[str, Any]:
        """The variables that decide whether a host is checked, rendered/decrypted when they must be."""
        out = {}
        for key in (FLEETCHECK_PREFIX + "transport", "ansible_connection", "ansible_shell_type"):
            if key in merged:
                var = merged[key]
                plain = not (isinstance(var.value, VaultValue) or is_template(var.value))
                ok, value, _ = (True, var.value, False) if plain else self.value(name, key, var, values)
                if ok:
                    out[key] = value
        return out

    def value(self, name: str, key: str, var: Var, values: dict[str, Any]) -> tuple[bool, Any, bool]:
        """(usable, value, secret) for one variable: decrypted, rendered, or left out with a warning."""
        value, secret = var.value, var.secret
        if isinstance(value, VaultValue):
            try:
                value, secret = self.secrets.decrypt(value.ciphertext), True
            except VaultError as exc:
                self.warn.add(f"vault-encrypted '{key}' left out ({exc})", name)
                return False, None, True
        if is_template(value):
            from fleetcheck.inventory.templating import NeedsAnsible, render  # jinja2: only for templates

            magic = {"inventory_hostname": name, "inventory_hostname_short": name.split(".")[0],
                     "group_names": sorted(g for g in self.precedence.host_groups(name) if g != "ungrouped"),
                     "groups": self.members}
            try:
                value = render(value, _Plain(values, self.secrets), magic)
            except NeedsAnsible as exc:
                self.warn.add(f"templated '{key}' left out: it needs Ansible ({exc.what})", name)
                return False, None, secret
            except ValueError as exc:
                self.warn.add(f"templated '{key}' left out ({exc})", name)
                return False, None, secret
        return True, value, secret

    def host(
        self, name: str, merged: dict[str, Var], values: dict[str, Any]
    ) -> tuple[Host, dict[str, tuple[str, Origin]]]:
        mapped: dict[str, Any] = {}
        source: dict[str, tuple[str, Origin]] = {}  # fleetcheck key -> (ansible key, origin)
        custom: dict[str, Any] = {}
        for key in [*(k for k in MAPPED if k in merged), *(k for k in merged if k not in MAPPED)]:
            var = merged[key]
            convert: Callable[[Any], Any]
            if key == "ansible_connection":
                target, convert = "transport", _transport_name
            elif key in MAPPED:
                target, convert = MAPPED[key]
            elif key.startswith(FLEETCHECK_PREFIX):
                target, convert = key.removeprefix(FLEETCHECK_PREFIX), _same
                allowed = set(HostSettings.model_fields)
                if target not in allowed:
                    close = difflib.get_close_matches(target, sorted(allowed), n=1)
                    hint = f"did you mean '{FLEETCHECK_PREFIX}{close[0]}'?" if close else "fleetcheck_<key> takes a key of the native format"
                    raise InventoryError(var.origin.path, var.origin.line, key, "unknown fleetcheck setting", hint)
            elif key in ("ansible_connection", "ansible_shell_type"):
                self.connection_vars.setdefault(name, {})[key] = var.value
                continue
            elif key.startswith("ansible_"):
                self.ignored.add(key)
                continue
            else:
                ok, value, secret = self.value(name, key, var, values)
                if ok:
                    custom[key] = SecretStr(str(value)) if secret else value
                continue
            ok, value, secret = self.value(name, key, var, values)
            if not ok:
                continue
            hidden = secret or key in PASSWORD_KEYS
            self.connection_vars.setdefault(name, {})[key] = SecretStr(str(value)) if hidden else value
            if key in PASSWORD_KEYS and not secret:
                file = str(var.origin.path)
                self.clear_passwords[file] = self.clear_passwords.get(file, 0) + 1
            try:
                mapped[target] = convert(value)
            except (TypeError, ValueError) as exc:
                where = var.origin
                shown = "" if key in PASSWORD_KEYS or secret else f" (got {value!r})"
                raise InventoryError(where.path, where.line, key, f"{exc}{shown}"[:300]) from None
            source[target] = (key, var.origin)
        if custom:
            mapped["vars"] = {**custom, **(mapped.get("vars") or {})}
        host = self.build(name, mapped, source)
        return host, source

    def build(self, name: str, mapped: dict[str, Any], source: dict[str, tuple[str, Origin]]) -> Host:
        """Validate and fold; hosts that differ only in name and address share one validation.

        A fleet's hosts mostly share their group settings, so a 5,000-host inventory is a few
        validations plus one cheap copy per host.
        """
        scoped_address = any(k.endswith(":address") for k in mapped)  # resolve_host picks per transport
        address = None if scoped_address else mapped.pop("address", None)
        if address is not None and not str(address):
            key, origin = source["address"]
            raise InventoryError(origin.path, origin.line, key, "the address is empty")
        signature = None if scoped_address else _frozen(mapped)
        template = self.templates.get(signature) if signature is not None else None
        if template is None:
            settings = self.validate(name, dict(mapped), source)
            first = self.inv.hosts[name].origin
            template = resolve_host(name, [], [settings], path=Path(str(first.path)), line=first.line)
            if signature is not None:
                self.templates[signature] = template
        update: dict[str, Any] = {"name": name, "groups": self.precedence.host_groups(name)}
        if not scoped_address:
            update["address"] = str(address) if address is not None else name
            problem = address_problem(update["address"])
            if problem is not None:
                key, origin = source.get("address", (name, self.inv.hosts[name].origin))
                raise InventoryError(origin.path, origin.line, key, problem, "give a DNS name or an IPv4/IPv6 address")
        return template.model_copy(update=update)

    def validate(self, name: str, mapped: dict[str, Any], source: dict[str, tuple[str, Origin]]) -> dict[str, Any]:
        scoped = {k: mapped.pop(k) for k in list(mapped) if ":" in k}
        try:
            plain = HostSettings.model_validate(mapped).model_dump(exclude_unset=True)
            for key, value in scoped.items():
                real = key.partition(":")[2]
                plain[key] = getattr(HostSettings.model_validate({real: value}), real)
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = str(err["loc"][0]) if err["loc"] else ""
            match = next(((k, o) for t, (k, o) in source.items() if (t.partition(":")[2] or t) == field_name), None)
            key, origin = match if match else (field_name, self.inv.hosts[name].origin)
            problem = err["msg"] if "password" in field_name else f"{err['msg']} (got {err.get('input')!r})"
            raise InventoryError(origin.path, origin.line, key, problem[:300]) from None
        return plain


def _frozen(mapped: dict[str, Any]) -> Any:
    """A hashable key for mapped settings (None when some value cannot be hashed)."""
    key = tuple(sorted(
        (k, ("dict", tuple(sorted(v.items(), key=lambda kv: str(kv[0])))) if isinstance(v, dict)
         else ("list", tuple(v)) if isinstance(v, list) else (type(v).__name__, v))
        for k, v in mapped.items()
    ))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _transport_name(value: Any) -> str:
    """ansible.builtin.psrp -> psrp, paramiko -> ssh (skipped hosts never get here)."""
    return connection_of({"ansible_connection": value, "ansible_shell_type": "powershell"})[0] or str(value)


def _same(value: Any) -> Any:
    return value


class _Plain(Mapping[str, Any]):
    """Host values for templates, with vault values decrypted when a password opens them."""

    def __init__(self, values: dict[str, Any], secrets: VaultSecrets) -> None:
        self.data = values
        self.secrets = secrets

    def __getitem__(self, key: str) -> Any:
        value = self.data[key]
        if isinstance(value, VaultValue):
            return self.secrets.decrypt(value.ciphertext)
        return value

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def resolve(inv: RawInventory, files: VarsFiles, secrets: VaultSecrets) -> Resolved:
    return Resolver(inv, files, secrets).run()
