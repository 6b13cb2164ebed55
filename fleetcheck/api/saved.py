"""`evaluate_saved` and `load_results`: judging facts and reading results an earlier run wrote."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcheck import __version__
from fleetcheck.api.inputs import _nightly, load_playbooks
from fleetcheck.api.options import DEFAULT_PLAYBOOK, EvaluateOptions, RunOutcome
from fleetcheck.api.run import _finish
from fleetcheck.errors import UserError
from fleetcheck.results import HostResult, RunResult

if TYPE_CHECKING:
    from fleetcheck.facts import FactsDocument
    from fleetcheck.playbook import Playbook

MAX_FACTS_BYTES = 50 * 1024 * 1024


def evaluate_saved(
    facts_dir: Path, playbooks: Sequence[str | Path | Playbook] = (), options: EvaluateOptions | None = None
) -> RunOutcome:
    """Judge facts saved by `run --save-facts DIR` again: same rules and waivers, no network."""
    options = options or EvaluateOptions()
    names = [str(getattr(p, "name", p)) for p in playbooks] or [DEFAULT_PLAYBOOK]
    loaded = load_playbooks(list(playbooks) or names)
    opts = _nightly(None, "last", options.waivers, None) if options.waivers is not None else None
    result = _evaluate_dir(facts_dir, loaded, names)
    return _finish(result, len(result.hosts), opts, options.reports, options.console)


def _evaluate_dir(facts_dir: Path, playbooks: list[Playbook], names: list[str]) -> RunResult:
    from pydantic import ValidationError

    from fleetcheck.facts import FactsDocument
    from fleetcheck.runner import judge_output
    from fleetcheck.transports.base import ScriptOutput

    if not facts_dir.is_dir():
        raise UserError(f"{facts_dir}: not a folder of saved facts (write one with run --save-facts DIR)")
    files = sorted(p for p in facts_dir.glob("*.json") if p.is_file())
    if not files:
        raise UserError(f"{facts_dir}: no *.json facts files (write them with run --save-facts DIR)")
    started = datetime.now(UTC)
    hosts: list[HostResult] = []
    for path in files:
        try:
            if path.stat().st_size > MAX_FACTS_BYTES:
                raise UserError(f"{path}: larger than {MAX_FACTS_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
            facts = FactsDocument.model_validate_json(text)
        except (ValidationError, ValueError) as exc:
            raise UserError(f"{path}: not a fleetcheck facts document ({' '.join(str(exc).split())[:200]})") from None
        # the same judgement as `run`, as of when the facts were collected
        status, message, checks, _, error_type = judge_output(
            None, ScriptOutput(stdout=text), playbooks, _collected_at(facts) or started
        )
        hosts.append(
            HostResult(
                host=facts.inventory_name or urllib.parse.unquote(path.stem), address=facts.host.computer_name, status=status, message=message,
                error_type=error_type, checks=checks,
            )
        )
    return RunResult(
        run_id="evaluate-" + started.strftime("%Y%m%dT%H%M%SZ"),
        started_at=started,
        finished_at=datetime.now(UTC),
        inventory=str(facts_dir),
        playbooks=names,
        check_ids=list(dict.fromkeys(c.check_id for h in hosts for c in h.checks)),
        hosts=hosts,
        fleetcheck_version=__version__,
    )


def _collected_at(facts: FactsDocument) -> datetime | None:
    """Judge time-based rules as of the scan (the scanner's clock), not today.

    Older facts files without `scanned_at` fall back to the host's own clock, which hides
    clock skew: better than judging yesterday's facts against today's date."""
    try:
        stamp = datetime.fromisoformat(str(facts.scanned_at or facts.host.collected_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def load_results(path: Path) -> RunResult:
    """A json report, or a journal (JSON lines) from an interrupted or crashed run."""
    from fleetcheck.reports import json as json_report

    if path.suffix in (".jsonl", ".journal"):
        from fleetcheck.journal import read_journal

        try:
            return read_journal(path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable fleetcheck journal ({exc})") from None
    return json_report.load(path)
