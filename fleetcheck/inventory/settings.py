"""Per-level connection settings shared by both inventory formats, and their inheritance.

Each level (top vars, group vars, host entry) is validated on its own so an error points at
the line that holds it; `resolve_host` then folds the levels, lowest precedence first.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from fleetcheck.inventory.address import address_problem
from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.model import AuthName, Host, PsrpClientName, TransportName
from fleetcheck.yamlfile import line_of

WINRM_AUTHS = frozenset({"negotiate", "ntlm", "basic", "kerberos", "certificate", "credssp"})
SSH_AUTHS = frozenset({"password", "key"})
#: auth methods that cannot work without a password.
PASSWORD_AUTHS = frozenset({"ntlm", "basic", "credssp", "password"})
MAX_TIMEOUT_S = 3600.0
#: Auth methods the inventory accepts by name but no transport can use yet, and why.
UNSUPPORTED_AUTHS: dict[str, str] = {}


class Settings(BaseModel):
    """Keys allowed at any level; all optional, unset means 'inherit'."""

    model_config = ConfigDict(extra="forbid")

    transport: TransportName | None = None
    scheme: Literal["http", "https"] | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    auth: AuthName | None = None
    psrp_client: PsrpClientName | None = None
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    key_path: Path | None = None
    cert_validation: bool | None = None
    ca_path: Path | None = None
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    tags: list[str] | None = None
    playbooks: list[str] | None = None
    vars: dict[str, Any] | None = None
    #: ssh only: "default" (~/.ssh/known_hosts), "accept" (no host key check; labs only) or a file.
    ssh_known_hosts: str | None = Field(default=None, min_length=1)
    #: Kerberos: the host name in the SPN when it differs from `address` (an IP, a load balancer,
    #: a CNAME), Ansible's negotiate_hostname_override; and the SPN's service (WSMAN or HTTP).
    negotiate_hostname_override: str | None = Field(default=None, min_length=1)
    negotiate_service: Literal["WSMAN", "HTTP"] | None = None
    #: Kerberos credentials other than the ticket cache: a client keytab, or a named cache.
    kerberos_keytab: Path | None = None
    kerberos_ccache: str | None = Field(default=None, min_length=1)
    #: certificate auth: the client certificate (PEM); its key is `key_path`.
    cert_path: Path | None = None
    #: The site whose workers check the host (`fleetcheck worker --site NAME`); `local`: this process.
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class HostSettings(Settings):
    """A host entry may also name its address."""

    address: str | None = Field(default=None, min_length=1)


def _describe(err: Any, allowed: Sequence[str]) -> tuple[str, str]:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(err["loc"][-1]) if err.get("loc") else "", list(allowed), n=1)
        return "unknown key", (f"did you mean '{close[0]}'?" if close else "allowed keys: " + ", ".join(allowed))
    if kind == "literal_error":
        return f"got {err.get('input')!r}; expected {err['msg'].removeprefix('Input should be ')}", ""
    return f"{err['msg']} (got {err.get('input')!r})", ""


def validation_to_error(
    exc: ValidationError, data: Any, path: Path, loc_prefix: Sequence[Any], allowed: Sequence[str]
) -> InventoryError:
    """The first pydantic error as an InventoryError with the YAML line of the offending key."""
    err = exc.errors()[0]
    loc = [*loc_prefix, *err["loc"]]
    key = ".".join(str(p) for p in loc) if loc else None
    problem, hint = _describe(err, allowed)
    if err.get("type") != "extra_forbidden" and "password" in str(key or ""):
        problem = err["msg"]  # never echo the value of a password key
    return InventoryError(path, line_of(data, loc), key, problem, hint)


def validate_level(raw: Any, *, path: Path, root: Any, loc: Sequence[Any], host: bool) -> dict[str, Any]:
    """Validate one level's settings mapping; returns only the keys that were set."""
    model = HostSettings if host else Settings
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InventoryError(
            path, line_of(root, loc), ".".join(map(str, loc)) or None, "expected a mapping of settings"
        )
    try:
        parsed = model.model_validate(dict(raw))
    except ValidationError as exc:
        raise validation_to_error(exc, root, path, loc, sorted(model.model_fields)) from None
    return parsed.model_dump(exclude_unset=True)


def fold_levels(levels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Later levels win; tags accumulate, custom vars merge key by key."""
    out: dict[str, Any] = {}
    for level in levels:
        for key, value in level.items():
            if key == "tags":
                out["tags"] = list(dict.fromkeys([*out.get("tags", []), *value]))
            elif key == "vars":
                out["vars"] = {**out.get("vars", {}), **value}
            else:
                out[key] = value
    return out


def resolve_host(
    name: str, groups: list[str], levels: Sequence[dict[str, Any]], *, path: Path, line: int | None
) -> Host:
    """Fold levels into the contract `Host`, checking combinations no single level can."""
    merged = fold_levels(levels)
    transport = merged.get("transport", "psrp")
    for key in [k for k in merged if ":" in k]:  # transport-scoped keys (Ansible's ansible_winrm_*/psrp_*)
        value = merged.pop(key)
        scope, _, real = key.partition(":")
        if transport in scope.split("|"):
            merged[real] = value
    merged.setdefault("address", name)
    problem = address_problem(str(merged["address"]))
    if problem is not None:
        raise InventoryError(path, line, f"{name}.address", problem, "give a DNS name or an IPv4/IPv6 address")
    if "scheme" not in merged and merged.get("port") in (5985, 5986):
        merged["scheme"] = "http" if merged["port"] == 5985 else "https"  # what a Windows admin means
    auth = merged.get("auth")
    if auth is None:
        merged["auth"] = ("key" if merged.get("key_path") else "password") if transport == "ssh" else "negotiate"
    elif transport == "ssh" and auth not in SSH_AUTHS:
        raise InventoryError(path, line, f"{name}.auth", f"auth '{auth}' does not apply to ssh", "use password or key")
    elif transport != "ssh" and auth not in WINRM_AUTHS:
        raise InventoryError(
            path, line, f"{name}.auth", f"auth '{auth}' does not apply to {transport}",
            "use negotiate, ntlm, kerberos, basic, certificate or credssp",
        )
    if merged["auth"] in UNSUPPORTED_AUTHS:
        raise InventoryError(path, line, f"{name}.auth", UNSUPPORTED_AUTHS[merged["auth"]], "use negotiate (or kerberos)")
    if transport == "ssh" and "scheme" not in merged:
        merged["scheme"] = "http"  # meaningless for ssh; keeps `inventory` output honest
    if merged["auth"] == "certificate" and not (merged.get("cert_path") and merged.get("key_path")):
        raise InventoryError(
            path, line, f"{name}.auth", "auth 'certificate' needs a client certificate and its key",
            "set cert_path and key_path (PEM files)",
        )
    merged["groups"] = groups
    try:
        return Host(name=name, **merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InventoryError(path, line, name, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def host_needs_password(host: Host) -> bool:
    return host.auth in PASSWORD_AUTHS or (host.auth in {"negotiate", "kerberos"} and host.password_env is not None)


def allowed_keys(host: bool) -> list[str]:
    return sorted((HostSettings if host else Settings).model_fields)


__all__ = ["AuthName", "HostSettings", "Settings", "TransportName", "fold_levels", "resolve_host"]


@dataclass
class HostDraft:
    """A host as a format parser saw it: its levels of settings, not yet folded."""

    name: str
    line: int | None
    groups: list[str] = field(default_factory=list)
    group_levels: list[dict[str, Any]] = field(default_factory=list)
    host_levels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def levels(self) -> list[dict[str, Any]]:
        """Group settings (outer to inner, document order) first; the host's own keys win."""
        return [*self.group_levels, *self.host_levels]


@dataclass
class ParsedInventory:
    """What a format parser hands to the loader."""

    fmt: str
    drafts: dict[str, HostDraft] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> host names (nested included)
    playbooks: list[str] = field(default_factory=list)
    waivers: str | None = None
    warnings: list[str] = field(default_factory=list)

    def add_occurrence(
        self, name: str, line: int | None, groups: list[str], group_levels: list[dict[str, Any]], own: dict[str, Any]
    ) -> None:
        """A host named again (another group) gains that group's path and levels, in document order."""
        draft = self.drafts.setdefault(name, HostDraft(name=name, line=line))
        for group in groups:
            if group not in draft.groups:
                draft.groups.append(group)
            members = self.groups.setdefault(group, [])
            if name not in members:
                members.append(name)
        for level in group_levels:
            if not any(level is seen for seen in draft.group_levels):
                draft.group_levels.append(level)
        draft.host_levels.append(own)
