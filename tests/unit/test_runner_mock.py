"""The runner driven through MockTransport: no network, no pypsrp; one host's trouble is one row."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from fleetcheck.errors import AuthRejected, HostError, ProtocolError, Unreachable
from fleetcheck.inventory.model import Host
from fleetcheck.playbook import Playbook, load_playbook
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunEvent, RunOptions, run_fleet
from fleetcheck.transports import get_transport, stop_workers, transport_names, worker_pool
from fleetcheck.transports.base import ScriptOutput, Transport
from fleetcheck.transports.mock import MockTransport
from fleetcheck.transports.target import PsrpSettings, SshSettings, Target, WinrmSettings


def _facts(target: Target, script: str, args_json: str, scenario: str = "healthy-2019") -> str:
    from fleetcheck.lab.host import LabHost
    from fleetcheck.lab.scenarios import load_scenario
    from fleetcheck.lab.simprobes import answer_bundle

    machine = load_scenario(scenario).model_copy(update={"hostname": target.name[:15]})
    return answer_bundle(LabHost(target.name, machine), script, args_json)


def _hosts(*names: str) -> list[Host]:
    return [
        Host(name=n, address="192.0.2.1", transport="winrm", username="u", password=SecretStr("pw-secret-1"))
        for n in names
    ]


@pytest.fixture(scope="module")
def playbooks() -> list[Playbook]:
    return [load_playbook("system-state-backup")]


async def test_a_small_fleet_through_mock_transport(playbooks: list[Playbook]) -> None:
    seen: list[Target] = []

    def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        seen.append(target)
        if target.name == "down":
            raise Unreachable("connection refused on 192.0.2.1:5986 - is WinRM listening?", error_type="refused")
        if target.name == "badpw":
            raise AuthRejected("credentials rejected (NTLM) - check the password")
        if target.name == "legacy":
            return ScriptOutput(stdout=_facts(target, script, args_json, "legacy-ps2"))
        return ScriptOutput(stdout=_facts(target, script, args_json))

    mock = MockTransport(handler)
    run = await run_fleet(_hosts("ok", "down", "badpw", "legacy"), playbooks, RunOptions(transport=mock, retries=0))
    by = {h.host: h for h in run.hosts}
    assert by["ok"].status is HostStatus.COMPLIANT and by["ok"].checks
    assert (by["down"].status, by["down"].error_type) == (HostStatus.UNREACHABLE, "refused")
    assert by["down"].message == "connection refused on 192.0.2.1:5986 - is WinRM listening?"
    assert (by["badpw"].status, by["badpw"].error_type) == (HostStatus.AUTH_FAILED, "auth_failed")
    assert by["legacy"].status is HostStatus.UNSUPPORTED
    # the handler sees typed targets carrying only the winrm settings of the inventory host
    assert {type(t.settings) for t in seen} == {WinrmSettings}
    assert seen[0].port == 5986 and seen[0].secrets() == ("pw-secret-1",)


async def test_async_handler_and_library_exception_mapped(playbooks: list[Playbook]) -> None:
    calls = 0

    async def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:  # a plain OS error, as a library would raise it: mapped and retried (transient)
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return ScriptOutput(stdout=_facts(target, script, args_json))

    opts = RunOptions(transports=[MockTransport(handler, name="winrm")], retries=1, backoff=0.01)
    run = await run_fleet(_hosts("flaky"), playbooks, opts)
    assert (run.hosts[0].status, run.hosts[0].attempts) == (HostStatus.COMPLIANT, 2)


async def test_judging_failure_is_that_hosts_row(playbooks: list[Playbook], monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetcheck.checks as checks

    real = checks.evaluate

    def evaluate(facts, pbs, ctx=None):  # type: ignore[no-untyped-def]
        if facts.host.computer_name.lower() == "boom":
            raise KeyError("a rule defect")
        return real(facts, pbs, ctx)

    monkeypatch.setattr(checks, "evaluate", evaluate)
    mock = MockTransport(lambda t, s, a: ScriptOutput(stdout=_facts(t, s, a)))
    run = await run_fleet(_hosts("boom", "fine"), playbooks, RunOptions(transport=mock))
    by = {h.host: h for h in run.hosts}
    assert (by["boom"].status, by["boom"].error_type) == (HostStatus.PROTOCOL_ERROR, "internal")
    assert by["boom"].message.startswith("internal error while judging the host: KeyError")
    assert by["fine"].status is HostStatus.COMPLIANT


async def test_facts_that_cannot_be_saved_are_that_hosts_row(playbooks: list[Playbook], tmp_path: Path) -> None:
    blocked = tmp_path / "facts"
    blocked.write_text("a file where the facts folder should be", encoding="utf-8")
    mock = MockTransport(lambda t, s, a: ScriptOutput(stdout=_facts(t, s, a)))
    run = await run_fleet(_hosts("one", "two"), playbooks, RunOptions(transport=mock, save_facts=blocked))
    assert [(h.status, h.error_type) for h in run.hosts] == [(HostStatus.PROTOCOL_ERROR, "internal")] * 2
    assert all(h.message.startswith("internal error while saving the facts:") for h in run.hosts)


async def test_a_300_character_host_name_saves_its_facts(playbooks: list[Playbook], tmp_path: Path) -> None:
    long_name = "srv-" + "x" * 296  # used to be ENAMETOOLONG for its facts file
    mock = MockTransport(lambda t, s, a: ScriptOutput(stdout=_facts(t, s, a)))
    opts = RunOptions(transport=mock, save_facts=tmp_path / "facts")
    run = await run_fleet(_hosts(long_name, "short"), playbooks, opts)
    assert {h.host: h.status for h in run.hosts} == {long_name: HostStatus.COMPLIANT, "short": HostStatus.COMPLIANT}
    assert (tmp_path / "facts" / "short.json").is_file() and len(list((tmp_path / "facts").iterdir())) == 2


async def test_real_refusal_leaves_the_transport_as_our_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    for name in ("psrp", "winrm", "ssh", "psrp:native"):
        transport = get_transport(name)
        host = Host(
            name="T", address="127.0.0.1", port=port, scheme="http", auth="ntlm" if name != "ssh" else "password",
            transport=name.split(":")[0], psrp_client="native" if name.endswith("native") else "pypsrp",
            username="u", password=SecretStr("pw-secret-1"),
        )
        with pytest.raises(HostError) as info:
            await transport.run(host.to_target(), "x", "{}", timeout=5)
        listener = "sshd" if name == "ssh" else "WinRM"
        assert isinstance(info.value, Unreachable), name
        assert info.value.message == f"connection refused on 127.0.0.1:{port} - is {listener} listening?"


def test_registry_names_and_settings_models() -> None:
    assert {"psrp", "psrp:native", "winrm", "ssh"} <= set(transport_names())
    for name in ("psrp", "winrm", "ssh"):
        assert isinstance(get_transport(name), Transport) and get_transport(name).name == name
    with pytest.raises(KeyError):
        get_transport("telnet")
    ssh = Host(name="j", address="::1", transport="ssh", auth="key", key_path=Path("/k/id"), ssh_known_hosts="accept")
    target = ssh.to_target()
    assert isinstance(target.settings, SshSettings) and target.settings.known_hosts == "accept"
    assert target.port == 22 and target.settings.uses_key
    psrp = Host(name="p", address="h", scheme="http").to_target().settings
    assert isinstance(psrp, PsrpSettings) and psrp.effective_port == 5985


async def test_transport_for_another_kind_of_host_is_a_config_error(playbooks: list[Playbook]) -> None:
    from fleetcheck.transports.winrm import WinrmTransport

    run = await run_fleet(
        [Host(name="s", address="127.0.0.1", transport="ssh")], playbooks,
        RunOptions(transport=WinrmTransport(), retries=0),
    )
    assert (run.hosts[0].status, run.hosts[0].error_type) == (HostStatus.PROTOCOL_ERROR, "config")
    assert isinstance(ProtocolError("x"), HostError)


def test_stop_workers_waits_then_counts_the_stuck() -> None:
    pool = worker_pool(2)
    release = time.monotonic() + 0.6
    pool.submit(lambda: time.sleep(max(0.0, release - time.monotonic())))
    pool.submit(lambda: None)
    pool.shutdown(wait=False)
    t0 = time.monotonic()
    assert stop_workers(0.1) >= 1  # the sleeper still runs after the grace
    assert time.monotonic() - t0 < 0.5
    assert stop_workers(5.0) == 0


async def test_watching_the_hosts_costs_the_same_for_each_host(
    playbooks: list[Playbook], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner once re-waited on every pending task each time a host ended: O(hosts^2), which
    a 1,000-host run at forks 50 paid as seconds of CPU. Watching now costs O(1) per host."""
    real_wait = asyncio.wait
    watched = 0

    async def counting_wait(fs, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal watched
        fs = list(fs)
        watched += len(fs)
        return await real_wait(fs, *args, **kwargs)

    async def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        await asyncio.sleep(0)
        raise Unreachable("connection refused", error_type="refused")

    monkeypatch.setattr(asyncio, "wait", counting_wait)
    hosts = 400
    opts = RunOptions(transport=MockTransport(handler), retries=0, forks=4, stop=asyncio.Event())
    run = await run_fleet(_hosts(*(f"h{i}" for i in range(hosts))), playbooks, opts)
    assert len(run.hosts) == hosts and not run.interrupted
    assert {h.status for h in run.hosts} == {HostStatus.UNREACHABLE}
    assert watched <= 4 * hosts, f"{watched} task waits for {hosts} hosts"


async def test_rows_are_checked_for_unsafe_text_as_they_are_recorded(
    playbooks: list[Playbook], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The report boundary does not read a clean recorded row's JSON again (that read waited
    for the last host of every run); a hostile row is still cleaned there, and a copy of a
    recorded row (as waivers make) is checked afresh."""
    from fleetcheck.reports import sanitize

    hostile = "srv\x1b]0;owned\x07"
    mock = MockTransport(lambda target, script, args_json: ScriptOutput(stdout=_facts(target, script, args_json)))
    journal = tmp_path / "journal.jsonl"
    run = await run_fleet(
        _hosts("ok1", "ok2", hostile), playbooks, RunOptions(transport=mock, retries=0, journal=journal)
    )
    reads: list[str] = []
    real = sanitize._may_be_unsafe
    monkeypatch.setattr(sanitize, "_may_be_unsafe", lambda model, **kw: reads.append(getattr(model, "host", "run")) or real(model, **kw))
    clean = sanitize.sanitize_result(run)
    assert sorted(reads) == sorted(["run", hostile])  # the run's own fields, and the hostile row
    assert len(clean.hosts) == 3 and {h.host for h in clean.hosts} >= {"ok1", "ok2"}
    assert not any("\x1b" in h.host or "\x07" in h.host for h in clean.hosts)
    assert all(clean.hosts[i] is run.hosts[i] for i, h in enumerate(run.hosts) if h.host != hostile)
    # the journal's lines are the rows' own JSON, written once per host
    assert journal.read_text(encoding="utf-8").count('"record": "host"') == 3
    copy = run.hosts[0].model_copy(update={"message": "\x1b[31mwaived"})
    reads.clear()
    assert "\x1b" not in sanitize.sanitize_result(run.model_copy(update={"hosts": [copy]})).hosts[0].message
    assert sorted(reads) == sorted(["run", copy.host])


async def test_hosts_that_finish_together_are_judged_one_per_loop_pass(playbooks: list[Playbook]) -> None:
    """Judging waits its turn behind the network: with 20 hosts answering at once, another
    host's I/O (a callback scheduled each loop pass) runs between any two judged hosts."""
    passes = 0
    judged_at: list[int] = []
    release = asyncio.Event()

    async def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        await release.wait()
        return ScriptOutput(stdout=_facts(target, script, args_json))

    def tick() -> None:  # stands for the network: one callback per pass of the loop
        nonlocal passes
        passes += 1
        loop.call_soon(tick)

    loop = asyncio.get_running_loop()
    opts = RunOptions(
        transport=MockTransport(handler), retries=0, forks=20,
        on_event=lambda e: judged_at.append(passes) if e.kind == "host_finished" else None,
    )
    task = asyncio.create_task(run_fleet(_hosts(*(f"h{i}" for i in range(20))), playbooks, opts))
    await asyncio.sleep(0.05)
    loop.call_soon(tick)
    release.set()
    run = await task
    assert len(run.hosts) == 20 and {h.status for h in run.hosts} == {HostStatus.COMPLIANT}
    assert len(set(judged_at)) == 20, judged_at  # never two hosts judged in the same pass


async def test_a_stopped_run_keeps_the_hosts_waiting_to_be_judged(playbooks: list[Playbook]) -> None:
    """Stop arrives while collected hosts wait their turn to be judged: each is still a row."""
    stop = asyncio.Event()

    async def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        return ScriptOutput(stdout=_facts(target, script, args_json))

    def on_event(event: RunEvent) -> None:
        if event.kind == "host_finished":
            stop.set()  # after the first host: the other 29 have been collected, not yet judged

    opts = RunOptions(transport=MockTransport(handler), retries=0, forks=30, stop=stop, on_event=on_event)
    run = await run_fleet(_hosts(*(f"h{i}" for i in range(30))), playbooks, opts)
    assert run.interrupted
    assert sorted(h.host for h in run.hosts) == sorted(f"h{i}" for i in range(30))
    assert {h.status for h in run.hosts} == {HostStatus.COMPLIANT}


async def test_a_judging_backlog_is_bounded_by_forks(playbooks: list[Playbook]) -> None:
    """Collected output waiting to be judged is memory: never more than `forks` hosts wait."""
    from fleetcheck import runner

    most = 0
    real = runner._Fleet.judge

    def judge(self: runner._Fleet, target: Target, collected: object) -> None:
        nonlocal most
        most = max(most, self.waiting_to_judge)
        real(self, target, collected)  # type: ignore[arg-type]

    async def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        return ScriptOutput(stdout=_facts(target, script, args_json))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner._Fleet, "judge", judge)
        run = await run_fleet(_hosts(*(f"h{i}" for i in range(60))), playbooks,
                              RunOptions(transport=MockTransport(handler), retries=0, forks=5))
    assert len(run.hosts) == 60 and {h.status for h in run.hosts} == {HostStatus.COMPLIANT}
    assert 1 <= most <= 5, most
