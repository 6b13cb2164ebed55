"""`json` report: the full `RunResult` as the documented `fleetcheck/report/v1` schema."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from fleetcheck.errors import UserError
from fleetcheck.reports.base import ReportContext, write_atomic
from fleetcheck.results import REPORT_SCHEMA, RunResult

MAX_RESULTS_BYTES = 200 * 1024 * 1024


class ResultsFileError(UserError, ValueError):
    """A saved results file that cannot be read back."""


def render(result: RunResult, context: ReportContext | None = None) -> str:
    return result.model_dump_json(by_alias=True, indent=2) + "\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))


def load(path: Path) -> RunResult:
    """Read a `json` report back (for `fleetcheck report`); errors name the file and the field."""
    try:
        with path.open("rb") as fh:  # bounded even where stat() says 0 (/dev/zero, a pipe)
            data = fh.read(MAX_RESULTS_BYTES + 1)
        if len(data) > MAX_RESULTS_BYTES:
            raise ResultsFileError(f"{path}: larger than {MAX_RESULTS_BYTES} bytes")
        text = data.decode("utf-8")
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not UTF-8 text; expected a fleetcheck json report") from None
    try:
        result = RunResult.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "document"
        raise ResultsFileError(
            f"{path}: not a fleetcheck json report ({where}: {err['msg']}); write one with --report json:PATH"
        ) from None
    if result.schema_ != REPORT_SCHEMA:
        raise ResultsFileError(f"{path}: schema '{result.schema_}' is not supported (expected {REPORT_SCHEMA})")
    return result
