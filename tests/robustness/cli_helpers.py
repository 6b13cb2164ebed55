"""Run the CLI in-process (fast) and insist on an honest exit: 0-3 with a message, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from fleetcheck.cli import app

_runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = _runner.invoke(app, list(args), env=env)
    text = result.output
    assert "Traceback" not in text, text[-2000:]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped the CLI: {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1, 2, 3), (result.exit_code, text[-2000:])
    return result.exit_code, text
