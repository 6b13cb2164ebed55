"""Find, detect and load an inventory into resolved `Host`s; load credentials for a run."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from fleetcheck.inventory.ansible import looks_like_ansible, parse_ansible
from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.hostrange import MAX_HOSTS
from fleetcheck.inventory.model import Host
from fleetcheck.inventory.native import parse_native
from fleetcheck.inventory.settings import PASSWORD_AUTHS, resolve_host
from fleetcheck.yamlfile import YamlFileError, load_yaml

SEARCH_DIRS = (Path("."), Path("inventories"))


@dataclass
class Inventory:
    """A loaded inventory: resolved hosts plus what the CLI shows and warns about."""

    path: Path
    fmt: str
    hosts: list[Host]
    groups: dict[str, list[str]] = field(default_factory=dict)
    playbooks: list[str] = field(default_factory=list)
    waivers: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)


def find_inventory(name: str | Path, cwd: Path | None = None) -> Path:
    """`prod.yml` -> ./prod.yml, else ./inventories/prod.yml (also tries .yml/.yaml suffixes)."""
    base = cwd or Path.cwd()
    given = Path(name).expanduser()
    candidates: list[Path] = []
    roots = [Path("/")] if given.is_absolute() else [base / d for d in SEARCH_DIRS]
    for root in roots:
        target = root / given if not given.is_absolute() else given
        candidates.append(target)
        if not target.suffix:
            candidates += [target.with_suffix(".yml"), target.with_suffix(".yaml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise InventoryError(given, None, None, "inventory file not found", f"looked for {tried}")


def load_inventory(path: Path) -> Inventory:
    """Parse either format; raises `InventoryError` (with line numbers) for anything wrong."""
    try:
        data = load_yaml(path)
    except YamlFileError as exc:
        if _looks_like_ini(path):
            raise InventoryError(path, None, None, "this looks like an INI inventory; fleetcheck reads YAML",
                                 "convert it: ansible-inventory -i FILE --list --yaml > hosts.yml") from None
        raise InventoryError(path, exc.line, exc.key, exc.problem, exc.hint) from None
    if data is None:
        raise InventoryError(path, None, None, "the inventory is empty", "see docs/inventory-format.md")
    if not isinstance(data, dict):
        if _looks_like_ini(path):
            raise InventoryError(path, None, None, "this looks like an INI inventory; fleetcheck reads YAML",
                                 "convert it: ansible-inventory -i FILE --list --yaml > hosts.yml")
        raise InventoryError(path, getattr(data, "line", 1), None, "expected a mapping at the top level")
    parsed = parse_ansible(data, path) if looks_like_ansible(data) else parse_native(data, path)
    if not parsed.drafts:
        raise InventoryError(path, None, None, "the inventory defines no host", "add entries under 'hosts'")
    if len(parsed.drafts) > MAX_HOSTS:
        raise InventoryError(path, None, None, f"more than {MAX_HOSTS} hosts")
    hosts: list[Host] = []
    warnings = list(parsed.warnings)
    for draft in parsed.drafts.values():
        host = resolve_host(draft.name, draft.groups, draft.levels, path=path, line=draft.line)
        if host.password is not None:
            warnings.append(
                f"{path}, line {draft.line}: host {host.name} has a password written in the inventory; "
                "prefer password_env or --ask-pass"
            )
        hosts.append(host)
    waivers = (path.parent / parsed.waivers) if parsed.waivers else None
    return Inventory(path, parsed.fmt, hosts, parsed.groups, parsed.playbooks, waivers, _dedupe(warnings))


def _looks_like_ini(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    lines = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ";"))]
    return bool(lines) and lines[0].startswith("[") and lines[0].endswith("]")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


Prompt = Callable[[str], str]


def load_credentials(
    hosts: list[Host], *, environ: Mapping[str, str] | None = None, ask_pass: bool = False, prompt: Prompt | None = None
) -> list[Host]:
    """Fill passwords from the environment or one prompt per distinct username.

    Order: an inline password, else the `password_env` variable, else (with --ask-pass) the
    prompt. A host whose auth needs a password and has none is a configuration error, named
    with the variable or flag that would fix it.
    """
    env = os.environ if environ is None else environ
    asked: dict[str, SecretStr] = {}
    out: list[Host] = []
    missing: dict[str, list[str]] = {}
    for host in hosts:
        password = host.password
        if password is None and host.password_env and env.get(host.password_env):
            password = SecretStr(env[host.password_env])
        needs = host.auth in PASSWORD_AUTHS or host.password_env is not None
        if password is None and needs and ask_pass:
            user = host.username or "(no username)"
            if user not in asked:
                if prompt is None:
                    raise InventoryError(None, None, None, "--ask-pass needs an interactive terminal")
                asked[user] = SecretStr(prompt(f"Password for {user}: "))
            password = asked[user]
        if password is None and needs:
            reason = f"environment variable {host.password_env} is not set" if host.password_env else "no password"
            missing.setdefault(reason, []).append(host.name)
        out.append(host.model_copy(update={"password": password}))
    if missing:
        reason, names = next(iter(missing.items()))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise InventoryError(
            None, None, None, f"{reason} for {shown}",
            "export the variable, set password_env in the inventory, or pass --ask-pass",
        )
    return out
