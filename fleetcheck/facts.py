"""The facts envelope: what one host's bundled probe script prints, as one JSON document.

The per-probe `data` shapes live in `fleetcheck.probes.schema` (one pydantic model per probe).
The lab imports this module and that one to answer probe scripts in exactly this shape;
nothing else of the product is imported by the lab.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

FACTS_SCHEMA = "fleetcheck/facts/v1"


class ProbeError(BaseModel):
    """A probe that failed remotely reports this instead of data."""

    type: str
    message: str
    hresult: int | None = None


class ProbeOutcome(BaseModel):
    """One probe's result inside the facts document: either `data` or `error`."""

    data: Any = None
    error: ProbeError | None = None
    duration_ms: int = 0
    #: `data` as its probe's model, once the facts parser has checked it (never serialized):
    #: the rules read the same model instead of validating the data a second time.
    parsed: Any = Field(default=None, exclude=True, repr=False)


class HostInfo(BaseModel):
    """Identity of the remote session, collected by the bundle itself (not a probe)."""

    computer_name: str = ""
    ps_version: str = ""
    ps_edition: str = "Desktop"
    culture: str = ""
    ui_culture: str = ""
    collected_at: str = ""  # ISO 8601 UTC, remote clock


class FactsDocument(BaseModel):
    """The whole JSON document one host returns."""

    schema_: str = Field(default=FACTS_SCHEMA, alias="schema")
    host: HostInfo = Field(default_factory=HostInfo)
    probes: dict[str, ProbeOutcome] = Field(default_factory=dict)
    #: Set (e.g. "PowerShell 2.0") when the host cannot run the probes; `probes` is then empty
    #: and the runner marks the host `unsupported`.
    unsupported: str | None = None
    #: The *scanning* machine's UTC clock when the document arrived (ISO 8601). Never sent by
    #: the host: the runner stamps it when saving facts, so `fleetcheck evaluate` judges clock
    #: skew and look-back windows as of the scan, not as of the remote (possibly skewed) clock.
    scanned_at: str | None = None
    #: The inventory name the runner saved the document for (file names are escaped or hashed,
    #: so this is the name `fleetcheck evaluate` reports).
    inventory_name: str | None = None

    model_config = {"populate_by_name": True}
