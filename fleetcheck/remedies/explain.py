"""The remedy part of `fleetcheck explain`: the exact change, its options, and whether a playbook enables it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fleetcheck.remedies import NO_SAFE_FIX, REMEDIES


def render_remedy(check_id: str, playbooks: Sequence[Any]) -> str:
    rdef = REMEDIES.get(check_id)
    if rdef is None:
        why = NO_SAFE_FIX.get(check_id, "this check has no remedy")
        return f"\nAutomatic fix (fleetcheck fix): none; {why}.\n"
    lines = ["", "Automatic fix (fleetcheck fix):", f"  {rdef.describe}"]
    for pb in playbooks:
        settings = pb.checks.get(check_id)
        if settings is None:
            lines.append(f"  playbook {pb.name}: the check is not in this playbook")
            continue
        state = "enabled (remediate: true)" if settings.remediate else f"not enabled (set checks.{check_id}.remediate: true)"
        lines.append(f"  playbook {pb.name}: {state}")
        options = settings.remedy.model_dump() if settings.remedy is not None else {}
        if options:
            lines.append(f"  options (checks.{check_id}.remedy): " + ", ".join(f"{k}: {json.dumps(v)}" for k, v in options.items()))
    return "\n".join(lines) + "\n"
