"""Machine state: one YAML document per simulated host, in Windows terms.

Base fields (identity, users, WinRM settings) are what the protocol layer reads. The
fact sections (features, services, volumes, ...) are what the simulated probes answer
from. Every section has a default so tests can build a minimal machine in one line.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabUser(_Model):
    """A local or domain account the host accepts."""

    name: str
    password: str
    domain: str = ""
    authorized_keys: list[str] = Field(default_factory=list)  # OpenSSH public keys
    admin: bool = True


class WinRMSettings(_Model):
    """The WinRM service configuration (winrm get winrm/config) that changes behaviour."""

    max_shells_per_user: int = 30
    max_envelope_size_kb: int = 500
    idle_timeout_s: float = 7200.0
    allow_unencrypted: bool = False
    basic_auth: bool = True
    protocol_version: str = "2.3"  # "2.1" = PowerShell 2.0 host (150 KiB envelopes)


class OsInfo(_Model):
    caption: str = "Microsoft Windows Server 2019 Standard"
    version: str = "10.0.17763"
    build_number: int = 17763
    product_type: int = 3  # 1 workstation, 2 domain controller, 3 server
    installation_type: str = "Server"  # "Server Core" on Core installs
    architecture: str = "64-bit"


class LocaleInfo(_Model):
    culture: str = "en-US"
    ui_culture: str = "en-US"


class PowerShellInfo(_Model):
    version: str = "5.1.17763.1852"
    edition: str = "Desktop"


class MachineState(_Model):
    """One simulated Windows host."""

    hostname: str = "SRV01"
    domain: str = "WORKGROUP"
    os: OsInfo = Field(default_factory=OsInfo)
    locale: LocaleInfo = Field(default_factory=LocaleInfo)
    powershell: PowerShellInfo = Field(default_factory=PowerShellInfo)
    users: list[LabUser] = Field(default_factory=lambda: [LabUser(name="fleetcheck", password="Lab-Passw0rd!")])
    winrm: WinRMSettings = Field(default_factory=WinRMSettings)
    # Fact sections are added below by the probe simulation (owned by the probes work).
