"""The resolved host: what every inventory format produces and every transport consumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from fleetcheck.transports.target import PsrpSettings, SshSettings, Target, TransportSettings, WinrmSettings

TransportName = Literal["psrp", "winrm", "ssh"]
PsrpClientName = Literal["pypsrp", "native"]
AuthName = Literal["negotiate", "ntlm", "basic", "kerberos", "certificate", "credssp", "password", "key"]


class Host(BaseModel):
    """One target with every setting resolved (inheritance applied, secret loaded)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    address: str
    transport: TransportName = "psrp"
    scheme: Literal["http", "https"] = "https"
    port: int | None = None  # None: the transport's default for the scheme
    auth: AuthName = "negotiate"
    psrp_client: PsrpClientName = "native"  # psrp only: native (asyncio, the default) or pypsrp (threads)
    username: str | None = None
    password: SecretStr | None = None  # never logged: SecretStr prints as '**********'
    password_env: str | None = None
    key_path: Path | None = None  # ssh private key, or the key of the client certificate
    cert_path: Path | None = None  # certificate auth: the client certificate (PEM)
    negotiate_hostname_override: str | None = None  # Kerberos: the SPN's host name
    negotiate_service: Literal["WSMAN", "HTTP"] = "WSMAN"  # Kerberos: the SPN's service
    kerberos_keytab: Path | None = None  # Kerberos: a client keytab instead of the ticket cache
    kerberos_ccache: str | None = None  # Kerberos: a named ticket cache instead of the default
    cert_validation: bool = True
    ca_path: Path | None = None
    timeout: float = 120.0
    groups: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    playbooks: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)  # anything else, for custom checks
    #: ssh only: "default" (~/.ssh/known_hosts), "accept" (no host key check; labs only) or a file.
    ssh_known_hosts: str | None = None
    #: Where the host is checked from: `local` (this process) or a site whose workers reach it.
    site: str = "local"

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        if self.transport == "ssh":
            return 22
        return 5986 if self.scheme == "https" else 5985

    def to_target(self) -> Target:
        """The typed target a transport runs against: identity plus only its transport's settings."""
        return Target(
            name=self.name,
            address=self.address,
            settings=self._transport_settings(),
            groups=tuple(self.groups),
            tags=tuple(self.tags),
            timeout=self.timeout,
            site=self.site,
        )

    def _transport_settings(self) -> TransportSettings:
        common: dict[str, Any] = {"port": self.port, "username": self.username, "password": self.password}
        if self.transport == "ssh":
            auth = self.auth if self.auth in ("password", "key") else "password"
            return SshSettings.model_validate(
                {"auth": auth, "key_path": self.key_path, "known_hosts": self.ssh_known_hosts, **common}
            )
        wsman: dict[str, Any] = {
            "scheme": self.scheme,
            "auth": self.auth if self.auth not in ("password", "key") else "negotiate",
            "cert_validation": self.cert_validation,
            "ca_path": self.ca_path,
            "negotiate_hostname_override": self.negotiate_hostname_override,
            "negotiate_service": self.negotiate_service,
            "kerberos_keytab": self.kerberos_keytab,
            "kerberos_ccache": self.kerberos_ccache,
            "cert_path": self.cert_path,
            "key_path": self.key_path,
            **common,
        }
        if self.transport == "winrm":
            return WinrmSettings.model_validate(wsman)
        return PsrpSettings.model_validate({**wsman, "client": self.psrp_client})
