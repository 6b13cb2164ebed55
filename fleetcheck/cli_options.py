"""Options of `fleetcheck run` beyond the basics, the configuration file behind them, and
`fleetcheck config`. `fleetcheck.cli` declares the command; this module holds what it needs so
the command stays a list of options and one call into `fleetcheck.api`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fleetcheck.errors import UserError

if TYPE_CHECKING:
    from fleetcheck.config import EffectiveConfig


def _check_ids(incomplete: str) -> list[str]:
    from fleetcheck.checks.registry import CHECK_ORDER

    return [c for c in CHECK_ORDER if c.startswith(incomplete.lower())]


def _tags(incomplete: str) -> list[str]:
    from fleetcheck.checks.registry import CHECKS

    return sorted({t for c in CHECKS.values() for t in c.tags if t.startswith(incomplete.lower())})


Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log to stderr: -v progress details, -vv debug.")]
Tags = Annotated[
    list[str] | None,
    typer.Option("--tags", "-t", metavar="TAG[,TAG]", help="Only checks with one of these tags.", autocompletion=_tags),
]
SkipTags = Annotated[
    list[str] | None,
    typer.Option("--skip-tags", metavar="TAG[,TAG]", help="No checks with these tags.", autocompletion=_tags),
]
Checks = Annotated[
    list[str] | None,
    typer.Option("--checks", "--check", metavar="ID|N[,...]", help="Only these checks (ids in any case, or the table's numbers).",
                 autocompletion=_check_ids),
]
FailOn = Annotated[
    str | None,
    typer.Option("--fail-on", metavar="any|noncompliant|unreachable",
                 help="Which hosts fail the run: any (default: exit 3 if a host could not be checked, else 1 if a "
                      "check failed), noncompliant (exit 1 on failed checks only), unreachable (exit 3 only)."),
]
ConfigPath = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="Configuration file to use instead of ./fleetcheck.toml, "
                 "the user's and /etc/fleetcheck/fleetcheck.toml."),
]
Since = Annotated[
    str | None,
    typer.Option("--since", metavar="REF", help="Compare with a recorded run: last (the previous run of this inventory "
                 "and --limit; the default), last~N (N runs before the newest), or a run id or its prefix "
                 "(`fleetcheck diff --list`)."),
]

#: fleetcheck.toml [run] key -> parameter of `fleetcheck run` (the rest have the same name).
PARAM_OF = {"playbooks": "playbook", "reports": "report"}
#: Parameters of `fleetcheck run` a configuration file may set (fleetcheck.config.RunConfig's keys).
CONFIGURABLE = frozenset({
    "playbook", "limit", "forks", "timeout", "report", "view", "wide", "save_facts", "journal", "ssh_known_hosts",
    "psrp_client", "history", "no_history", "since", "waivers", "mail_to", "smtp", "mail_always", "tags",
    "skip_tags", "checks", "fail_on",
})


def load_config(path: Path | None) -> EffectiveConfig:
    from fleetcheck import config

    try:
        return config.load(path)
    except config.ConfigError as exc:
        raise UserError(str(exc)) from None


def with_config(ctx: typer.Context, path: Path | None, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (the command's parameters) with the configuration files' values filled in where
    the command line left the default. Command line > ./fleetcheck.toml > user > /etc."""
    effective = load_config(path)
    merged = dict(values)
    for key, setting in effective.run.items():
        param = PARAM_OF.get(key, key)
        if param not in merged or setting.value is None:
            continue
        source = ctx.get_parameter_source(param)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = setting.value
        merged[param] = [str(v) for v in value] if isinstance(value, list) else value
    return merged


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def require_terminal_for_prompt(ask_pass: bool) -> None:
    """--ask-pass reads from a terminal; from a pipe or cron it would hang or read garbage."""
    if ask_pass and not stdin_is_terminal():
        raise UserError(
            "--ask-pass needs a terminal to prompt on; under cron or in a pipe put the password in the "
            "environment variable the inventory names (password_env)"
        )


def config_cmd(config: ConfigPath = None) -> None:
    """Print the effective configuration: every `run` option, its value and the file and line it came from.

    \b
    Files, later ones winning: /etc/fleetcheck/fleetcheck.toml, the user's config folder
    (e.g. ~/.config/fleetcheck/fleetcheck.toml), ./fleetcheck.toml; or --config FILE alone.
    Options given on the command line win over every file.
    \b
    Example fleetcheck.toml:
      [run]
      reports = ["html:/var/www/fleetcheck/index.html", "json:/var/lib/fleetcheck/last.json"]
      fail_on = "noncompliant"
      forks = 100
    """
    from fleetcheck import config as config_module
    from fleetcheck.cli_lookup import user_errors

    with user_errors():
        typer.echo(config_module.describe(load_config(config)), nl=False)
