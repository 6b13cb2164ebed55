"""A typed target: one host's identity plus the settings of the transport that reaches it.

Each transport declares its own settings model (as pyinfra's connectors do), so a
transport reads only fields that exist for it, checked once when the inventory resolves,
instead of one flat host record carrying every transport's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

WsmanAuth = Literal["negotiate", "ntlm", "basic", "kerberos", "certificate", "credssp"]
SshAuth = Literal["password", "key"]
PsrpClient = Literal["pypsrp", "native"]


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int | None = None  # None: the transport's default
    username: str | None = None
    password: SecretStr | None = Field(default=None, repr=False)  # never logged: prints as '**********'

    def secret(self) -> str | None:
        """The password as plain text, for the one call that needs it."""
        return self.password.get_secret_value() if self.password is not None else None


class _WsmanSettings(_Settings):
    scheme: Literal["http", "https"] = "https"
    auth: WsmanAuth = "negotiate"
    cert_validation: bool = True
    ca_path: Path | None = None
    #: Kerberos: the SPN's host (connecting by IP, a load balancer) and service, and credentials
    #: other than the ticket cache (a client keytab, a named cache).
    negotiate_hostname_override: str | None = None
    negotiate_service: Literal["WSMAN", "HTTP"] = "WSMAN"
    kerberos_keytab: Path | None = None
    kerberos_ccache: str | None = None
    #: certificate auth: the client certificate and its key (PEM).
    cert_path: Path | None = None
    key_path: Path | None = None

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 5986 if self.scheme == "https" else 5985


class PsrpSettings(_WsmanSettings):
    """PSRP over WinRM: pypsrp (threads) or the native asyncio client."""

    kind: Literal["psrp"] = "psrp"
    client: PsrpClient = "native"


class WinrmSettings(_WsmanSettings):
    """WinRS (cmd shell over WinRM) with pywinrm."""

    kind: Literal["winrm"] = "winrm"


class SshSettings(_Settings):
    """PowerShell over SSH with asyncssh.

    `known_hosts`: "default" (~/.ssh/known_hosts), "accept"/"none" (no check; labs only) or a
    file; None leaves the choice to the transport (the run's default).
    """

    kind: Literal["ssh"] = "ssh"
    auth: SshAuth = "password"
    key_path: Path | None = None
    known_hosts: str | None = None

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else 22

    @property
    def uses_key(self) -> bool:
        return self.auth == "key" or (self.key_path is not None and self.password is None)


TransportSettings = Annotated[PsrpSettings | WinrmSettings | SshSettings, Field(discriminator="kind")]


class Target(BaseModel):
    """What a transport needs to reach one host: identity, deadline and its own settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: str
    settings: TransportSettings
    groups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    timeout: float = 120.0
    #: `local`, or the site whose workers reach the host (fleetcheck.dispatch).
    site: str = "local"

    @property
    def transport(self) -> str:
        return self.settings.kind

    @property
    def port(self) -> int:
        return self.settings.effective_port

    @property
    def auth(self) -> str:
        return self.settings.auth

    def secrets(self) -> tuple[str, ...]:
        """Texts to redact from anything this host's attempt produces."""
        pw = self.settings.secret()
        return (pw,) if pw else ()


def endpoint_address(address: str) -> str:
    """An address as it goes into a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


_S = TypeVar("_S", PsrpSettings, WinrmSettings, SshSettings)


def settings_as(target: Target, kind: type[_S]) -> _S:
    """The target's settings as the model a transport declares; a mismatch is a configuration error."""
    from fleetcheck.errors import ProtocolError

    settings = target.settings
    if not isinstance(settings, kind):
        raise ProtocolError(
            f"{kind.__name__} needed, but {target.name} is a {settings.kind} host", error_type="config"
        )
    return settings
