"""Run-time check selection: `--tags`, `--skip-tags` and `--checks`, as Ansible users expect.

The filters narrow what the playbooks enable; they never enable a check a playbook turned off.
`--checks` takes ids in any case or the table's numbers; tags match in any case. A filter that
leaves nothing to run, or names a tag or check no playbook has, is a usage error that lists
what exists (a typo must not turn into a silent "all compliant").
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetcheck.errors import UserError
from fleetcheck.playbook import Playbook


class SelectionError(UserError, ValueError):
    """A filter that selects nothing or names something unknown."""


def _split(values: Sequence[str] | None) -> list[str]:
    """`--tags a,b --tags c` -> ["a", "b", "c"] (comma lists and repeats alike)."""
    out: list[str] = []
    for value in values or []:
        out += [part.strip() for part in value.split(",") if part.strip()]
    return out


def _ids_and_tags(playbooks: Sequence[Playbook]) -> tuple[list[str], dict[str, list[str]]]:
    """Check ids in run order and each id's tags (lower case), over every playbook."""
    order: list[str] = []
    tags: dict[str, list[str]] = {}
    for pb in playbooks:
        for check in pb.checks.values():
            order.append(check.id)
            tags[check.id] = [t.lower() for t in check.tags]
        for custom in pb.custom_checks:
            order.append(custom.id)
            tags[custom.id] = [t.lower() for t in custom.tags]
    return list(dict.fromkeys(order)), tags


def _resolve_checks(refs: list[str], order: list[str]) -> set[str]:
    by_lower = {cid.lower(): cid for cid in order}
    chosen: set[str] = set()
    for ref in refs:
        if ref.isdigit() and 1 <= int(ref) <= len(order):
            chosen.add(order[int(ref) - 1])
        elif ref.lower() in by_lower:
            chosen.add(by_lower[ref.lower()])
        else:
            import difflib

            close = difflib.get_close_matches(ref.lower(), list(by_lower), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(by_lower[c] for c in close)}?" if close else "`fleetcheck checks` lists them"
            raise SelectionError(f"--checks '{ref}': no such check in the playbooks ({hint})")
    return chosen


def select(
    playbooks: Sequence[Playbook],
    tags: Sequence[str] | None = None,
    skip_tags: Sequence[str] | None = None,
    checks: Sequence[str] | None = None,
) -> list[Playbook]:
    """Copies of `playbooks` with the checks outside the filters disabled."""
    want_tags = {t.lower() for t in _split(tags)}
    skip = {t.lower() for t in _split(skip_tags)}
    refs = _split(checks)
    if not (want_tags or skip or refs):
        return list(playbooks)
    order, check_tags = _ids_and_tags(playbooks)
    known_tags = {t for ts in check_tags.values() for t in ts}
    for tag in sorted((want_tags | skip) - known_tags):
        raise SelectionError(f"tag '{tag}' is on no check of the playbooks; tags: {', '.join(sorted(known_tags)) or 'none'}")
    chosen = _resolve_checks(refs, order) if refs else set(order)

    def keep(cid: str) -> bool:
        its = set(check_tags.get(cid, []))
        return cid in chosen and (not want_tags or bool(its & want_tags)) and not (its & skip)

    out: list[Playbook] = []
    for pb in playbooks:
        new_checks = {
            cid: (c if keep(cid) else c.model_copy(update={"enabled": False})) for cid, c in pb.checks.items()
        }
        customs = [c if keep(c.id) else c.model_copy(update={"enabled": False}) for c in pb.custom_checks]
        out.append(pb.model_copy(update={"checks": new_checks, "custom_checks": customs}))
    if not any(pb.enabled_checks() or pb.enabled_custom_checks() for pb in out):
        raise SelectionError("the --tags/--skip-tags/--checks filters leave no enabled check to run")
    return out
