"""The lab's rendered native text reads back, through the product's parsers, as the machine
state it came from (and looks like the real English captures in ../shared/samples)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetcheck.lab.machine import MachineState
from fleetcheck.lab.probetext import render_shadowstorage, render_vss_writers, render_w32tm
from fleetcheck.lab.scenarios import load_scenario
from fleetcheck.parsers.shadowstorage import parse_shadowstorage
from fleetcheck.parsers.vsswriters import parse_vss_writers
from fleetcheck.parsers.w32tm import parse_w32tm_status

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


def test_shadowstorage_fallback_text_reads_back_as_bytes() -> None:
    m = MachineState()
    a = m.shadow_storage.associations["C"]
    [parsed] = parse_shadowstorage(render_shadowstorage(m))
    assert parsed.for_drive == "C:" and parsed.for_volume == m.volumes["C"].device_id
    for size, exact in ((parsed.used, a.used_bytes), (parsed.allocated, a.allocated_bytes), (parsed.maximum, a.max_bytes)):
        assert size.bytes is not None and abs(size.bytes - exact) / exact < 0.01  # three significant digits


def test_shadowstorage_unbounded_limit() -> None:
    m = MachineState.model_validate({"shadow_storage": {"associations": {"C": {"max_bytes": 2**64 - 1}}}})
    [parsed] = parse_shadowstorage(render_shadowstorage(m))
    assert parsed.maximum.unbounded


def test_writers_text_reads_back_states_and_ids() -> None:
    m = load_scenario("vss-writer-failed")
    writers = {w.writer_id.strip("{}").lower(): w for w in parse_vss_writers(render_vss_writers(m))}
    assert len(writers) == len(m.vss.writers)
    system = writers["e8132975-6f93-4464-a53e-1050253ae220"]
    assert system.state == 9


def test_w32tm_text_reads_back() -> None:
    m = load_scenario("clock-skew")
    status = parse_w32tm_status(render_w32tm(m, datetime.now(UTC)))
    assert status is not None and status.leap_indicator == 3 and status.stratum == 1
    assert status.source == "Local CMOS Clock"
    healthy = parse_w32tm_status(render_w32tm(MachineState(), datetime.now(UTC)))
    assert healthy is not None and healthy.leap_indicator == 0 and healthy.poll_interval == 10


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples not present")
def test_rendered_layout_matches_the_real_english_captures() -> None:
    real_w32tm = (SAMPLES / "w32tm_query_status_en_1.txt").read_text(encoding="utf-8").splitlines()[1:]
    ours = render_w32tm(MachineState(), datetime.now(UTC)).splitlines()
    assert [ln.split(":")[0] for ln in ours if ln] == [ln.split(":")[0] for ln in real_w32tm if ln]
    real_writers = (SAMPLES / "vssadmin_list_writers_en_2_exchange_failed.txt").read_text(encoding="utf-8")
    block = real_writers.split("\n\n")[0].splitlines()
    ours_block = render_vss_writers(MachineState()).split("\r\n\r\n")[1].splitlines()
    assert [ln.split(":")[0] for ln in ours_block] == [ln.split(":")[0] for ln in block]
    real_ss = (SAMPLES / "vssadmin_list_shadowstorage_en_1.txt").read_text(encoding="utf-8").splitlines()
    labels = [ln.split(":")[0].strip() for ln in render_shadowstorage(MachineState()).splitlines() if ":" in ln]
    assert labels == [ln.split(":")[0].strip() for ln in real_ss[5:] if ":" in ln and ln.startswith("   ")]
