"""Find, detect and load an inventory into resolved `Host`s; load credentials for a run."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from fleetcheck.inventory.ansible import looks_like_ansible
from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.model import Host
from fleetcheck.inventory.native import TOP_KEYS, parse_native
from fleetcheck.inventory.settings import PASSWORD_AUTHS, resolve_host
from fleetcheck.inventory.sources import looks_like_ini, read_sources
from fleetcheck.inventory.sources.resolve import resolve
from fleetcheck.inventory.sources.vars_files import VarsFiles
from fleetcheck.inventory.vault import VaultSecrets
from fleetcheck.yamlfile import YamlFileError, load_yaml

SEARCH_DIRS = (Path("."), Path("inventories"))
MAX_HOSTS = 100_000


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
    #: Ansible sources only: hosts left out with the reason, where each setting came from, group children.
    skipped: dict[str, str] = field(default_factory=dict)
    provenance: Mapping[str, dict[str, str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    direct: dict[str, list[str]] = field(default_factory=dict)
    connection_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        if candidate.is_file() or candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise InventoryError(given, None, None, "inventory file not found", f"looked for {tried}")


def load_inventory(
    path: Path | Sequence[Path], *, secrets: VaultSecrets | None = None, vault_files: Sequence[str] = ()
) -> Inventory:
    """Parse any supported source; raises `InventoryError` (with file and line) for anything wrong.

    One YAML file in fleetcheck's native format is read by the native reader; everything else
    (Ansible YAML, INI, directories, several sources, dynamic sources) by the Ansible readers.
    """
    paths = [path] if isinstance(path, Path) else list(path)
    first = paths[0]
    data: Any = None
    if len(paths) == 1 and first.is_file() and first.suffix in (".yml", ".yaml"):
        try:
            data = load_yaml(first)
        except YamlFileError as exc:
            if not looks_like_ini(first):  # Ansible tries its INI reader on a .yml that is not YAML
                raise InventoryError(first, exc.line, exc.key, exc.problem, exc.hint) from None
            return load_ansible_sources(paths, secrets or VaultSecrets(), list(vault_files))
        if data is None:
            raise InventoryError(first, None, None, "the inventory is empty", "see docs/inventory-format.md")
        if isinstance(data, dict) and _is_native(data):
            return _load_native(first, data)
    return load_ansible_sources(paths, secrets or VaultSecrets(), list(vault_files), data)


def _is_native(data: dict[Any, Any]) -> bool:
    """fleetcheck's own format: its top-level keys, or one of the keys only it has."""
    if looks_like_ansible(data) or "plugin" in data:
        return False
    if set(data) <= set(TOP_KEYS) or set(data) & {"playbooks", "groups", "waivers"}:
        return True
    return any(difflib.get_close_matches(str(key), TOP_KEYS, n=1, cutoff=0.8) for key in data)


def load_ansible_sources(
    paths: list[Path], secrets: VaultSecrets, vault_files: list[str], preloaded: Any = None
) -> Inventory:
    """Ansible's reading: every source, group_vars/host_vars, precedence, vault, templates, skips."""
    try:
        found = read_sources(paths, secrets, vault_files, preloaded)
    except RecursionError:
        raise InventoryError(paths[0], None, None, "the inventory nests too deeply to read") from None
    if not found.inv.hosts:
        raise InventoryError(paths[0], None, None, "the inventory defines no host", "add hosts to a group")
    files = VarsFiles(found.bases, secrets)
    resolved = resolve(found.inv, files, secrets)
    kinds = sorted(set(found.kinds))
    fmt = "ansible" if kinds in ([], ["yaml"]) else "ansible (" + ", ".join(kinds) + ")"
    warnings = [*(f"{kind}: {detail}" for kind, detail in found.inv.warnings), *resolved.warnings]
    return Inventory(
        paths[0], fmt, resolved.hosts, resolved.groups, [], None, warnings,
        skipped=resolved.skipped, provenance=resolved.provenance, children=resolved.children,
        direct=resolved.direct, connection_vars=resolved.connection_vars,
    )


def _load_native(path: Path, data: Any) -> Inventory:
    parsed = parse_native(data, path)
    if not parsed.drafts:
        raise InventoryError(path, None, None, "the inventory defines no host", "add entries under 'hosts'")
    if len(parsed.drafts) > MAX_HOSTS:
        raise InventoryError(path, None, None, f"more than {MAX_HOSTS} hosts")
    hosts: list[Host] = []
    warnings = list(parsed.warnings)
    inline: list[str] = []
    for draft in parsed.drafts.values():
        host = resolve_host(draft.name, draft.groups, draft.levels, path=path, line=draft.line)
        if host.password is not None:
            inline.append(host.name)
        hosts.append(host)
    if inline:  # one line per file, however many hosts
        shown = ", ".join(inline[:3]) + (f" and {len(inline) - 3} more" if len(inline) > 3 else "")
        warnings.append(f"{path}: password written in the inventory for {len(inline)} "
                        f"host{'s' if len(inline) != 1 else ''} ({shown}); prefer password_env or --ask-pass")
    waivers = (path.parent / parsed.waivers) if parsed.waivers else None
    return Inventory(path, parsed.fmt, hosts, parsed.groups, parsed.playbooks, waivers, _dedupe(warnings))


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
