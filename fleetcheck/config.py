"""`fleetcheck.toml`: run options kept in a file, so a cron line is just `fleetcheck run prod.yml`.

Files are read in layers, later ones winning key by key:

    /etc/fleetcheck/fleetcheck.toml   (the machine's defaults)
    <user config dir>/fleetcheck.toml (e.g. ~/.config/fleetcheck/fleetcheck.toml)
    ./fleetcheck.toml                 (the current directory, e.g. a repository of inventories)

`--config FILE` names the one file to use instead of the three. Options given on the command
line win over every file. Relative paths in a file are relative to that file's folder, so a
config that says `history = "state/history.sqlite3"` means the same from any directory.

Every value is validated by pydantic; a mistake is a `ConfigError` naming the file, the line,
the key and what to write instead (the CLI turns it into exit code 2).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetcheck.errors import UserError

FILE_NAME = "fleetcheck.toml"
SYSTEM_DIR = Path("/etc/fleetcheck")
MAX_CONFIG_BYTES = 1024 * 1024

FailOn = Literal["noncompliant", "unreachable", "any"]
View = Literal["full", "hosts", "checks", "summary"]


class ConfigError(UserError, ValueError):
    """A configuration file that cannot be used; the message names file, line and fix."""


class RunConfig(BaseModel):
    """Options of `fleetcheck run` that a file may set (the same names as the flags, with `_`)."""

    model_config = ConfigDict(extra="forbid")

    playbooks: list[str] | None = None
    limit: str | None = None
    forks: int | None = Field(default=None, ge=1, le=1000)
    timeout: float | None = Field(default=None, ge=1, le=3600)
    reports: list[str] | None = None
    view: View | None = None
    wide: bool | None = None
    history: Path | None = None
    no_history: bool | None = None
    since: str | None = None
    waivers: Path | None = None
    mail_to: str | None = None
    smtp: str | None = None
    mail_always: bool | None = None
    journal: Path | None = None
    save_facts: Path | None = None
    ssh_known_hosts: str | None = None
    psrp_client: Literal["pypsrp", "native"] | None = None
    fail_on: FailOn | None = None
    tags: list[str] | None = None
    skip_tags: list[str] | None = None
    checks: list[str] | None = None

    @field_validator("reports")
    @classmethod
    def _reports(cls, value: list[str] | None) -> list[str] | None:
        from fleetcheck.reports.base import ReportSpecError, parse_report_spec

        for spec in value or []:
            try:
                parse_report_spec(spec)
            except ReportSpecError as exc:
                raise ValueError(str(exc).replace("--report ", "")) from None
        return value


#: Keys whose values are paths (made absolute against the file's folder).
PATH_KEYS = frozenset({"history", "waivers", "journal", "save_facts"})
TABLES = {"run": RunConfig}


@dataclass
class Setting:
    value: Any
    source: str  # "default", "FILE:LINE" or "command line"


@dataclass
class EffectiveConfig:
    """The merged `[run]` options and where each came from."""

    files: list[Path] = field(default_factory=list)
    run: dict[str, Setting] = field(default_factory=dict)

    def value(self, key: str, default: Any = None) -> Any:
        setting = self.run.get(key)
        return default if setting is None or setting.value is None else setting.value


def user_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("fleetcheck"))


def search_path(cwd: Path | None = None) -> list[Path]:
    """Candidate files, lowest precedence first."""
    return [SYSTEM_DIR / FILE_NAME, user_config_dir() / FILE_NAME, (cwd or Path.cwd()) / FILE_NAME]


def key_line(text: str, table: str, key: str) -> int | None:
    """Line of `key = ...` inside `[table]` (1-based), for error messages; tomllib gives no positions."""
    current = ""
    pattern = re.compile(rf"""^\s*(["']?){re.escape(key)}\1\s*=""")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            current = header.group(1).strip().strip("\"'")
            continue
        if current == table and pattern.match(line):
            return number
    return None


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def read_file(path: Path) -> tuple[dict[str, Any], dict[str, int | None]]:
    """One file's validated `[run]` values (only the keys it sets) and the line of each."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; is this the right file?")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); see https://toml.io for the syntax") from None
    unknown = sorted(set(document) - set(TABLES))
    if unknown:
        first = unknown[0]
        line = next((n for n, ln in enumerate(text.splitlines(), 1) if re.match(rf"^\s*\[?\s*{re.escape(first)}\b", ln)), None)
        raise ConfigError(
            f"{_where(path, line)}: unknown section or key '{first}'; options of `fleetcheck run` go under [run]"
        )
    table = document.get("run", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'run' must be a table: write [run] on a line of its own, then key = value lines")
    lines = {key: key_line(text, "run", key) for key in table}
    try:
        model = RunConfig.model_validate(table)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        line = lines.get(key)
        if err["type"] == "extra_forbidden":
            import difflib

            close = difflib.get_close_matches(key, list(RunConfig.model_fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(RunConfig.model_fields)}"
            raise ConfigError(f"{_where(path, line)}: run.{key}: unknown option{hint}") from None
        raise ConfigError(
            f"{_where(path, line)}: run.{key}: {err['msg']} (got {table.get(key)!r})"
        ) from None
    values = model.model_dump(include=set(table))
    for key in PATH_KEYS & set(values):
        if values[key] is not None:
            values[key] = (path.parent / Path(os.path.expanduser(str(values[key])))).resolve()
    if values.get("reports"):
        values["reports"] = [_anchor_report(spec, path.parent) for spec in values["reports"]]
    return values, lines


def _anchor_report(spec: str, folder: Path) -> str:
    fmt, _, target = spec.partition(":")
    target_path = Path(os.path.expanduser(target.strip()))
    return f"{fmt}:{target_path if target_path.is_absolute() else (folder / target_path).resolve()}"


def load(explicit: Path | None = None, cwd: Path | None = None) -> EffectiveConfig:
    """The merged configuration: `explicit` alone, else every existing file of `search_path`."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"--config {explicit}: no such file")
        files = [explicit]
    else:
        files = [p for p in search_path(cwd) if p.is_file()]
    effective = EffectiveConfig(files=files)
    for path in files:
        values, lines = read_file(path)
        for key, value in values.items():
            effective.run[key] = Setting(value, _where(path, lines.get(key)))
    return effective


def merge_cli(config: EffectiveConfig, given: dict[str, Any]) -> EffectiveConfig:
    """Command-line values (those not None) win over the files; the source says so."""
    for key, value in given.items():
        if value is not None:
            config.run[key] = Setting(value, "command line")
    return config


def describe(config: EffectiveConfig) -> str:
    """`fleetcheck config`: every run option, its effective value and where it came from."""
    lines = ["Configuration files (later ones win):"]
    candidates = config.files if config.files else []
    if candidates:
        lines += [f"  {p}" for p in candidates]
    else:
        lines.append("  none found; looked for " + ", ".join(str(p) for p in search_path()))
    lines += ["", "[run]"]
    width = max(len(k) for k in RunConfig.model_fields)
    for key in RunConfig.model_fields:
        setting = config.run.get(key)
        if setting is None or setting.value is None:
            lines.append(f"{key.ljust(width)} = (default)")
            continue
        lines.append(f"{key.ljust(width)} = {_toml_value(setting.value)}    # {setting.source}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
