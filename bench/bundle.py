"""The exact remote work fleetcheck sends, written to files for the peers (who cannot import us)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PLAYBOOK = "system-state-backup"


def write_default_bundle(script_path: Path, args_path: Path, playbook: str = DEFAULT_PLAYBOOK) -> int:
    """Write the bundle script and its JSON argument for `playbook`; returns the script's size."""
    from fleetcheck.playbook import load_playbook
    from fleetcheck.runner import build_plan

    plan = build_plan([load_playbook(playbook)])
    script_path.write_text(plan.script, encoding="utf-8")
    args_path.write_text(plan.args_json, encoding="utf-8")
    return len(plan.script)
