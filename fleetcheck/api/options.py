"""The library API's option and outcome types, and the playbook used when none is named."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fleetcheck.results import HostResult, RunResult

if TYPE_CHECKING:
    from fleetcheck.changes import ChangeSet
    from fleetcheck.dispatch import Dispatcher
    from fleetcheck.dispatch.shard import Shard
    from fleetcheck.mail import MailSettings
    from fleetcheck.reports.base import ReportContext
    from fleetcheck.transports.base import Transport


DEFAULT_PLAYBOOK = "system-state-backup"


class ProgressSink(Protocol):
    """What a caller shows while hosts finish (the CLI draws a bar or prints lines)."""

    def run_started(self, total: int) -> None:
        """Inputs are valid and `total` hosts are about to be checked."""

    def host_done(self, host: HostResult) -> None:
        """One host finished (any status)."""

    def run_finished(self, result: RunResult, total: int) -> None:
        """No host runs any more; called before the change summary is printed."""


class Console(Protocol):
    """Where the change summary is printed (a rich Console fits)."""

    def print(self, *objects: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True)
class ReportSpec:
    """One `--report FORMAT:PATH`."""

    format: str
    path: Path


@dataclass
class RunOptions:
    """How to run a fleet check. Defaults suit a library caller: nothing written unless asked."""

    limit: str | None = None
    forks: int = 50
    #: Per-host deadline in seconds; None: each host's inventory `timeout` (default 120 s).
    timeout: float | None = None
    reports: Sequence[ReportSpec] = ()
    save_facts: Path | None = None
    journal: Path | None = None
    #: SSH host key policy: "default" (~/.ssh/known_hosts), "accept" or a known_hosts file.
    ssh_known_hosts: str = "default"
    #: pypsrp | native: overrides every psrp host's `psrp_client`.
    psrp_client: str | None = None
    history: Path | None = None
    #: Which recorded run the changes compare with: "last" (same scope), a run id, last~N.
    since: str = "last"
    #: Waivers file; None: the inventory's `waivers:` setting, if any.
    waivers: Path | None = None
    mail: MailSettings | None = None
    #: Asks for a password once per username (`--ask-pass`); None: passwords from the inventory/env.
    prompt: Callable[[str], str] | None = None
    progress: ProgressSink | None = None
    console: Console | None = None
    #: Transports by name, replacing the built-in ones (tests, plugins).
    transports: Mapping[str, Transport] | None = None
    #: Stop like Ctrl-C on SIGTERM (only possible in the main thread).
    handle_sigterm: bool = True
    #: Run-time check filters (`--tags`, `--skip-tags`, `--checks`): narrow the playbooks' checks.
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    checks: Sequence[str] = ()
    #: Which hosts fail the run (`fleetcheck.results.exit_code`): any, noncompliant, unreachable.
    fail_on: str = "any"
    #: Broker URL (redis://...): hosts of other sites than `local` go to their site's workers.
    broker: str | None = None
    #: Another dispatch engine instead of Celery (tests, plugins); implies sites like `broker`.
    dispatcher: Dispatcher | None = None
    #: Seconds a site may stay silent before its unstarted hosts end as unreachable.
    site_wait: float = 30.0
    #: Hosts per batch sent to a site's queue.
    batch_size: int = 100
    #: Only this share of the hosts (`--shard K/N`); recorded in the run's scope for `merge`.
    shard: Shard | None = None


@dataclass
class EvaluateOptions:
    """How to judge saved facts again: reports, waivers, and where the summary goes."""

    reports: Sequence[ReportSpec] = ()
    waivers: Path | None = None
    console: Console | None = None


@dataclass
class RunOutcome:
    """What a run produced. `run` has waivers applied: it is what reports and `exit_code` use."""

    run: RunResult
    exit_code: int
    total_hosts: int
    context: ReportContext
    changes: ChangeSet | None = None
    summary: str = ""
    notes: list[str] = field(default_factory=list)
    #: Problems that did not stop the run (history, mail, a report that could not be written).
    errors: list[str] = field(default_factory=list)
    report_errors: list[str] = field(default_factory=list)
    #: The inventory's warnings (unknown keys, deprecated settings...).
    warnings: list[str] = field(default_factory=list)




@dataclass
class MergeOptions:
    """How to record merged shard parts: history, reports, and where the summary goes."""

    history: Path | None = None
    since: str = "last"
    reports: Sequence[ReportSpec] = ()
    mail: MailSettings | None = None
    console: Console | None = None
