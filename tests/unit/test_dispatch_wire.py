"""What crosses the broker, and how the coordinator judges what comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from fleetcheck.dispatch.wire import Event, HostOutcome, RemoteOutput, WireTarget
from fleetcheck.errors import AuthRejected, TimedOut
from fleetcheck.inventory.model import Host
from fleetcheck.playbook import load_playbook
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet
from fleetcheck.transports.mock import MockTransport
from fleetcheck.transports.target import Target


def _host() -> Host:
    return Host(name="dmz01", address="192.0.2.7", username="svc", password=SecretStr("Top-Secret-1"),
                password_env="DMZ_PW", site="dmz")


def test_a_target_crosses_without_its_password_and_the_worker_fills_it_from_its_environment() -> None:
    wire = WireTarget.from_target(_host().to_target(), "DMZ_PW")
    assert "Top-Secret-1" not in wire.model_dump_json()
    assert wire.password_env == "DMZ_PW" and "password" not in wire.settings
    target = wire.to_target({"DMZ_PW": "from-the-worker"})
    assert target.settings.secret() == "from-the-worker"
    assert (target.name, target.site, target.port) == ("dmz01", "dmz", 5986)
    assert wire.to_target({}).settings.secret() is None


def test_a_failed_host_comes_back_as_its_own_error_class() -> None:
    outcome = HostOutcome(host="h", status=HostStatus.AUTH_FAILED, message="credentials rejected", error_type="auth_failed")
    event = Event.from_fields({b"event": Event(kind="done", site="dmz", host="h", outcome=outcome).fields()["event"].encode()})
    assert event.outcome is not None
    with pytest.raises(AuthRejected, match="credentials rejected") as caught:
        event.outcome.output()
    assert caught.value.transient is False  # the worker already retried
    with pytest.raises(TimedOut):
        HostOutcome(host="h", status=HostStatus.TIMEOUT, message="no answer within 5 s").output()


async def test_rules_about_the_hosts_clock_use_the_workers_time_of_the_answer() -> None:
    from fleetcheck.lab.host import LabHost
    from fleetcheck.lab.scenarios import load_scenario
    from fleetcheck.lab.simprobes import answer_bundle

    hour_ago = datetime.now(UTC) - timedelta(hours=1)

    def handler(target: Target, script: str, args_json: str) -> RemoteOutput:
        machine = load_scenario("healthy-2019").model_copy(update={"hostname": target.name})
        return RemoteOutput(stdout=answer_bundle(LabHost(target.name, machine), script, args_json), scanned_at=hour_ago)

    playbooks = [load_playbook("system-state-backup")]
    run = await run_fleet([_host()], playbooks, RunOptions(transport=MockTransport(handler), retries=0))
    skews = [c.observed["skew_s"] for c in run.hosts[0].checks if isinstance(c.observed, dict) and "skew_s" in c.observed]
    assert skews and abs(abs(skews[0]) - 3600) < 60  # an answer judged an hour after it was given
