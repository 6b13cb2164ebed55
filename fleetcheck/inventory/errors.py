"""The one error type a bad inventory produces: it names file, line, key, problem and fix."""

from __future__ import annotations

from pathlib import Path

from fleetcheck.errors import UserError


class InventoryError(UserError):
    """A configuration mistake in an inventory (CLI exit code 2, never a traceback)."""

    def __init__(
        self,
        path: Path | str | None,
        line: int | None,
        key: str | None,
        problem: str,
        hint: str = "",
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = key
        self.problem = problem
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = str(self.path) if self.path is not None else "inventory"
        if self.line is not None:
            where += f", line {self.line}"
        text = f"{where}: "
        if self.key:
            text += f"'{self.key}': "
        text += self.problem
        if self.hint:
            text += f" ({self.hint})"
        return text
