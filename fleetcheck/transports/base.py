"""The one interface every transport implements (httpx-style: small, async, swappable).

A transport runs one static PowerShell script with one JSON argument on one host and
returns what came back. It never builds PowerShell from inventory or playbook values: the
JSON argument reaches the script as a PSRP parameter (psrp) or base64 inside a fixed
bootstrap (winrm, ssh). Classification of failures lives in `transports.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class ScriptOutput:
    """What a script produced: its text output and any error records."""

    stdout: str = ""
    errors: list[str] = field(default_factory=list)
    failed: bool = False  # terminating error / non-zero exit
    exit_code: int | None = None


class Transport(ABC):
    """Run `script` with the single parameter `-ArgsJson <json>` on one host."""

    name: ClassVar[str]

    @abstractmethod
    async def run(self, host: Any, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        """Connect, authenticate, run, close; raise on transport failure (classified later)."""
