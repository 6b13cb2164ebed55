"""Which event loop drives a run: uvloop where installed, asyncio's own on request or without it."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from fleetcheck import api, eventloop
from fleetcheck.errors import UserError
from fleetcheck.transports.base import ScriptOutput
from fleetcheck.transports.mock import MockTransport
from fleetcheck.transports.target import Target

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (it never is on Windows)")


def _loops_seen_by_a_run(tmp_path: Path) -> list[str]:
    """Run two hosts through `api.run` and return the loop each host's transport ran on."""
    inv = tmp_path / "inv.yml"
    inv.write_text(
        textwrap.dedent(
            """\
            vars: {username: ops, password: not-a-real-one, scheme: http}
            hosts:
              A: {address: 192.0.2.1}
              B: {address: 192.0.2.2}
            """
        ),
        encoding="utf-8",
    )
    seen: list[str] = []

    async def answer(target: Target, script: str, args_json: str) -> ScriptOutput:
        seen.append(eventloop.loop_name())
        await asyncio.sleep(0.01)  # a real wait on the loop's timer
        return ScriptOutput(stdout="", errors=["no facts here"])

    options = api.RunOptions(transports={"psrp": MockTransport(answer, name="psrp")}, handle_sigterm=False)
    outcome = api.run(inv, [], options)
    assert len(outcome.run.hosts) == 2
    return seen


def test_a_run_is_driven_by_uvloop_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.loop_factory() is uvloop.new_event_loop
    assert _loops_seen_by_a_run(tmp_path) == ["uvloop", "uvloop"]


def test_asyncio_s_own_loop_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.loop_factory() is None
    assert _loops_seen_by_a_run(tmp_path) == ["asyncio", "asyncio"]


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    monkeypatch.setenv(eventloop.ENV, "auto")
    assert eventloop.loop_factory() is None
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    with pytest.raises(UserError, match="uvloop is not installed"):
        eventloop.loop_factory()


def test_an_unknown_loop_name_is_a_user_error_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    ran: list[bool] = []

    async def main() -> None:
        ran.append(True)

    with pytest.raises(UserError, match="FLEETCHECK_EVENT_LOOP='trio': expected one of auto, uvloop, asyncio"):
        eventloop.run(main())
    assert ran == []


@pytest.mark.parametrize("choice", ["asyncio", "uvloop"])
def test_both_loops_return_the_coroutine_s_result(choice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, choice)

    async def main() -> str:
        await asyncio.sleep(0)
        return eventloop.loop_name()

    assert eventloop.run(main()) == choice
