"""`merge_parts`: the json reports of `run --shard K/N` recorded as one run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleetcheck.api.inputs import _nightly
from fleetcheck.api.options import MergeOptions, RunOutcome
from fleetcheck.api.run import _finish, _run_guard
from fleetcheck.api.saved import load_results


def merge_parts(paths: Sequence[Path], options: MergeOptions | None = None) -> RunOutcome:
    """The json reports of `run --shard K/N` as one run: history, changes, reports, exit code.

    Waivers were applied by each part; they are not applied again.
    """
    from fleetcheck.dispatch.merge import as_part, merge_results

    options = options or MergeOptions()
    result = merge_results([as_part(path, load_results(path)) for path in paths])
    opts = _nightly(options.history, options.since, None, options.mail)
    with _run_guard(opts):
        return _finish(result, len(result.hosts), opts, options.reports, options.console)
