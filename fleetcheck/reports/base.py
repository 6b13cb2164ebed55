"""The report-writer interface and the registry of formats (`--report FORMAT:PATH`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcheck.results import RunResult


@dataclass
class ReportContext:
    """Extra material some formats use; plain data, filled by the CLI from history."""

    changes: Any | None = None  # fleetcheck.changes.ChangeSet (nightly report)
    trend: list[Any] | None = None  # per-run compliance points, oldest first


Writer = Callable[[RunResult, Path, ReportContext], None]

#: format name -> "module:function". Lazy so `fleetcheck --help` stays fast.
WRITERS: dict[str, str] = {
    "json": "fleetcheck.reports.json:write",
    "csv": "fleetcheck.reports.csv:write",
    "junit": "fleetcheck.reports.junit:write",
    "markdown": "fleetcheck.reports.markdown:write",
    "html": "fleetcheck.reports.html:write",
    "prometheus": "fleetcheck.reports.prometheus:write",
}


def get_writer(fmt: str) -> Writer:
    """Resolve a format name; raises KeyError for unknown formats."""
    module_name, _, func = WRITERS[fmt].partition(":")
    writer: Writer = getattr(importlib.import_module(module_name), func)
    return writer
