"""Pure pieces around the runner: transport settings, CLIXML stderr, journal recovery, facts files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from fleetcheck.facts import FactsDocument, HostInfo
from fleetcheck.factsfiles import save_facts
from fleetcheck.inventory.model import Host
from fleetcheck.journal import Journal, read_journal
from fleetcheck.results import HostResult, HostStatus, RunResult
from fleetcheck.transports.base import Budget
from fleetcheck.transports.clixml import decode_clixml_errors
from fleetcheck.transports.errors import DeadlineExceeded, RunCancelled
from fleetcheck.transports.psrp import wsman_settings
from fleetcheck.transports.ssh import SshTransport, known_hosts_setting
from fleetcheck.transports.target import Target
from fleetcheck.transports.winrm import protocol_settings


def _host(**kw: object) -> Host:
    base: dict[str, object] = {"name": "SRV01", "address": "127.0.1.1", "username": "CORP\\svc", "password": SecretStr("pw")}
    return Host.model_validate(base | kw)


def _target(transport: str, **kw: object) -> Target:
    return _host(transport=transport, **kw).to_target()


def test_psrp_defaults_are_what_an_admin_expects(tmp_path: Path) -> None:
    https = wsman_settings(_target("psrp", ))
    assert (https["ssl"], https["port"], https["cert_validation"], https["auth"]) == (True, 5986, True, "negotiate")
    assert https["reconnection_retries"] == 0
    http = wsman_settings(_target("psrp", scheme="http"))
    assert (http["ssl"], http["port"], http["encryption"]) == (False, 5985, "auto")  # auto = encrypted on HTTP
    ca = tmp_path / "ca.pem"
    assert wsman_settings(_target("psrp", ca_path=ca))["cert_validation"] == str(ca)
    assert wsman_settings(_target("psrp", cert_validation=False, ca_path=ca))["cert_validation"] is False
    assert "password" not in https


def test_winrm_settings() -> None:
    s = protocol_settings(_target("winrm", scheme="http", port=15985))
    assert s["endpoint"] == "http://127.0.1.1:15985/wsman"
    assert protocol_settings(_target("winrm", address="::1"))["endpoint"] == "https://[::1]:5986/wsman"
    assert s["transport"] == "ntlm" and s["server_cert_validation"] == "validate"
    assert protocol_settings(_target("winrm", cert_validation=False))["server_cert_validation"] == "ignore"
    assert protocol_settings(_target("winrm", auth="basic"))["transport"] == "basic"
    assert "password" not in s


def test_ssh_options_and_known_hosts(tmp_path: Path) -> None:
    assert known_hosts_setting("accept") is None
    assert known_hosts_setting("default") == ()
    assert known_hosts_setting(str(tmp_path / "kh")) == str(tmp_path / "kh")
    t = SshTransport()
    pw = t.connect_options(_target("ssh", auth="password"), 5)
    assert (pw["port"], pw["password"], pw["client_keys"], pw["known_hosts"]) == (22, "pw", (), ())
    key = t.connect_options(_target("ssh", auth="key", key_path=tmp_path / "id", password=None), 5)
    assert key["client_keys"] == [str(tmp_path / "id")] and key["password"] is None
    lab = t.connect_options(_target("ssh", ssh_known_hosts="accept"), 5)
    assert lab["known_hosts"] is None


def test_clixml_stderr_decoded() -> None:
    stderr = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<S S="Error">Get-Item : Cannot find path_x000D__x000A_</S>'
        '<S S="Error">At line:1 char:1_x000D__x000A_</S><S S="Progress">ignored</S></Objs>'
    )
    assert decode_clixml_errors(stderr) == ["Get-Item : Cannot find path", "At line:1 char:1"]
    assert decode_clixml_errors("The command line is too long.\r\n") == ["The command line is too long."]
    assert decode_clixml_errors("") == []
    assert decode_clixml_errors("#< CLIXML\r\n<Objs><S S=") == ["<Objs><S S="]


def test_budget_phases() -> None:
    b = Budget(10, close_reserve=2)
    assert 7.5 < b.check() <= 8
    b.cancel()
    with pytest.raises(RunCancelled):
        b.check()
    b.start_closing()
    assert b.check() > 9  # closing is allowed after a cancel, within the deadline
    expired = Budget(0.0, close_reserve=0)
    with pytest.raises(DeadlineExceeded):
        expired.check()


def _run() -> RunResult:
    return RunResult(run_id="abc", started_at=datetime(2026, 1, 1, tzinfo=UTC), inventory="lab.yml", playbooks=["p"])


def test_journal_survives_a_torn_last_line_and_picks_the_last_run(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        first = _run()
        j.write_start(first)
        j.write_host("abc", HostResult(host="A", status=HostStatus.COMPLIANT))
        j.write_end(first)
    with Journal(path) as j:
        second = _run().model_copy(update={"run_id": "def"})
        j.write_start(second)
        j.write_host("def", HostResult(host="B", status=HostStatus.TIMEOUT))
    with path.open("a") as fh:
        fh.write('{"record": "host", "run_id": "def", "resu')  # crash mid-line
    last = read_journal(path)
    assert (last.run_id, last.interrupted, [h.host for h in last.hosts]) == ("def", True, ["B"])
    done = read_journal(path, "abc")
    assert (done.interrupted, [h.host for h in done.hosts]) == (False, ["A"])
    assert all(json.loads(line)["record"] for line in path.read_text().splitlines()[:-1])


def test_save_facts_roundtrip_and_safe_names(tmp_path: Path) -> None:
    doc = FactsDocument(host=HostInfo(computer_name="SRV/01"))
    path = save_facts(tmp_path / "facts", "../SRV/01", doc)
    assert path.parent == tmp_path / "facts" and path.name == "%2E.%2FSRV%2F01.json"
    assert FactsDocument.model_validate_json(path.read_text()).host.computer_name == "SRV/01"
    assert json.loads(path.read_text())["schema"] == "fleetcheck/facts/v1"


def test_journal_flushes_every_line_and_fsyncs_at_most_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetcheck.journal as journal_mod

    clock = [100.0]
    synced: list[int] = []
    monkeypatch.setattr(journal_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: synced.append(fd))
    path = tmp_path / "j.jsonl"
    j = Journal(path, fsync_interval=0.5)
    j.write_start(_run())
    assert len(synced) == 1 and not j.dirty  # the run record is fsynced at once
    for i in range(5):
        j.write_host("abc", HostResult(host=f"H{i}", status=HostStatus.COMPLIANT))
        clock[0] += 0.1
    # every line is already with the OS (a killed process keeps it), fsynced within the interval
    assert [h.host for h in read_journal(path).hosts] == [f"H{i}" for i in range(5)]
    assert len(synced) == 1 and j.dirty
    clock[0] += 0.1
    assert j.sync_if_due() and len(synced) == 2 and not j.dirty
    assert not j.sync_if_due()  # nothing pending: no fsync
    j.write_host("abc", HostResult(host="H5", status=HostStatus.COMPLIANT))
    j.close()  # the close fsyncs what is pending
    assert len(synced) == 3
    with Journal(path, fsync_interval=0) as every:
        every.write_host("abc", HostResult(host="H6", status=HostStatus.COMPLIANT))
        assert len(synced) == 4 and not every.dirty


def test_journal_host_line_is_the_result_as_report_json(tmp_path: Path) -> None:
    from report_samples import sample_result

    run = sample_result()
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.write_start(run)
        for h in run.hosts:
            j.write_host(run.run_id, h.model_copy(update={"message": "déjà vu ✓"}))
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    assert len(lines) == len(run.hosts) >= 2
    for line, h in zip(lines, run.hosts, strict=True):
        want = h.model_copy(update={"message": "déjà vu ✓"}).model_dump(mode="json")
        assert json.loads(line) == {"record": "host", "run_id": run.run_id, "result": want}
    assert [h.message for h in read_journal(path).hosts] == ["déjà vu ✓"] * len(run.hosts)


def test_clixml_non_bmp_character_is_one_character_not_surrogates() -> None:
    stderr = (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        '<S S="Error">Disk _xD83D__xDCBE_ full_x000D__x000A_</S></Objs>'
    )
    lines = decode_clixml_errors(stderr)
    assert lines == ["Disk \U0001f4be full"]
    assert lines[0].encode("utf-8")  # lone surrogates would raise UnicodeEncodeError here
