"""Loading and checking a run's inputs before the first connection: inventory, playbooks, reports, journal."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcheck.api.options import ReportSpec
from fleetcheck.errors import UserError

if TYPE_CHECKING:
    from fleetcheck.inventory import Inventory
    from fleetcheck.mail import MailSettings
    from fleetcheck.nightly import NightlyOptions
    from fleetcheck.playbook import Playbook

JOURNAL_ROTATE_BYTES = 50 * 1024 * 1024


def load_inventory(
    name: str | Path | Sequence[str | Path],
    *,
    vault_password_files: Sequence[str | Path] = (),
    vault_prompt: Callable[[str], str] | None = None,
) -> Inventory:
    """An inventory by path, or by name in ./ then inventories/ (warnings on `.warnings`).

    Several names are several Ansible sources read as one inventory, as `ansible -i a -i b`.
    Vault passwords come from the files given (`id@FILE` allowed), else
    ANSIBLE_VAULT_PASSWORD_FILE, plus one prompt when `vault_prompt` is given.
    """
    from fleetcheck.inventory import find_inventory
    from fleetcheck.inventory import load_inventory as load
    from fleetcheck.inventory.vault import VaultError, vault_secrets

    names = [name] if isinstance(name, str | Path) else list(name)
    if not names:
        raise UserError("no inventory given: name one, as in `fleetcheck run INVENTORY` or `-i INVENTORY`")
    try:
        secrets = vault_secrets([str(f) for f in vault_password_files], ask=vault_prompt is not None, prompt=vault_prompt)
    except VaultError as exc:
        raise UserError(str(exc)) from None
    return load([find_inventory(str(n)) for n in names], secrets=secrets, vault_files=[str(f) for f in vault_password_files])


def load_playbooks(names: Sequence[str | Path | Playbook]) -> list[Playbook]:
    """Built-in playbooks by name, playbook files by path; loaded ones pass through."""
    from fleetcheck.playbook import Playbook, load_playbook

    return [p if isinstance(p, Playbook) else load_playbook(p) for p in names]


def parse_report_specs(specs: Sequence[str]) -> list[ReportSpec]:
    """Parse `FORMAT:PATH` values and make sure each can be written, before any host is contacted."""
    from fleetcheck.reports.base import parse_report_spec

    parsed = [ReportSpec(*parse_report_spec(s)) for s in specs]
    for spec in parsed:
        fmt, path = spec.format, spec.path
        if path.is_dir():
            raise UserError(f"--report {fmt}:{path}: is a folder; give a file name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--report {fmt}:{path}: cannot create {path.parent} ({exc.strerror})") from None
        if not os.access(path.parent, os.W_OK):
            raise UserError(f"--report {fmt}:{path}: {path.parent} is not writable")
    return parsed


def default_journal_path() -> Path:
    """Every CLI run journals somewhere, so a killed run keeps what it collected."""
    import platformdirs

    return Path(platformdirs.user_state_dir("fleetcheck", appauthor=False)) / "journal.jsonl"


def prepare_journal(path: Path) -> Path:
    """Create the folder; keep the journal bounded by moving a big one aside (one old copy)."""
    if path.is_dir():
        raise UserError(f"--journal {path}: is a folder; give a file name, e.g. {path / 'journal.jsonl'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size > JOURNAL_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError as exc:
        raise UserError(f"--journal {path}: cannot use it ({exc.strerror})") from None
    return path


def run_scope(inventory: Path, limit: str | None) -> str:
    """What a run covered, as recorded in reports and history: the nightly baseline is the
    previous run of the same scope, so a `--limit` run or a second inventory sharing the
    history never shows the other hosts as "disappeared"."""
    scope = str(inventory.resolve())
    return f"{scope} --limit {limit}" if limit else scope


def _nightly(
    history: Path | None, since: str, waivers: Path | None, mail: MailSettings | None
) -> NightlyOptions | None:
    """The nightly features asked for, checked before the run; None when none is (the history,
    mail and waiver modules are then never loaded)."""
    if history is None and waivers is None and mail is None:
        return None
    from fleetcheck import nightly

    opts = nightly.NightlyOptions(history_path=history, since=since, waivers_path=waivers, mail=mail)
    return nightly.prepare(opts)
