"""Parsers against real captured outputs (../shared/samples) and hand-made edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.parsers import parse_shadowstorage, parse_size, parse_vss_writers, parse_w32tm_status

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


def sample(name: str) -> str:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"shared sample {name} not available")
    return path.read_text(encoding="utf-8")


# --- vssadmin list writers -------------------------------------------------------------------


def test_writers_english_sample_with_failed_exchange() -> None:
    writers = parse_vss_writers(sample("vssadmin_list_writers_en_2_exchange_failed.txt"))
    assert [w.name for w in writers] == [
        "System Writer",
        "Registry Writer",
        "IIS Metabase Writer",
        "Event Log Writer",
        "Microsoft Exchange Writer",
    ]
    assert writers[0].writer_id == "e8132975-6f93-4464-a53e-1050253ae220"
    assert writers[0].instance_id == "eb6b4c30-aa48-486a-9618-0d1934d180ca"
    assert [w.state for w in writers] == [1, 1, 1, 1, 7]
    exchange = writers[4]
    assert exchange.writer_id == "76fe1ac4-15f7-4bcd-987e-8e1acb462fb7"
    assert exchange.state_name == "FAILED_AT_PREPARE_BACKUP"
    assert exchange.last_error == "Retryable error"
    assert exchange.last_error_ok is False
    assert not exchange.healthy
    assert all(w.healthy for w in writers[:4])


def test_writers_french_sample() -> None:
    writers = parse_vss_writers(sample("vssadmin_list_writers_fr_1_partial.txt"))
    assert len(writers) == 4
    assert writers[0].name == "Task Scheduler Writer"
    assert writers[0].writer_id == "d61d61c8-d73a-4eee-8cdd-f6f9786b7124"
    assert writers[3].name == "System Writer"
    assert writers[3].instance_id == "3a440350-edf0-4b35-bbc0-2af9898666f7"
    assert all(w.state == 1 and w.last_error == "Aucune erreur" and w.healthy for w in writers)


def test_writers_two_digit_state_and_crlf() -> None:
    text = (
        "vssadmin 1.1 - banner\r\n\r\n"
        "Writer name: 'ASR Writer'\r\n"
        "   Writer Id: {BE000CBE-11FE-4426-9C58-531AA6355FC4}\r\n"
        "   Writer Instance Id: {00000000-1111-2222-3333-444444444444}\r\n"
        "   State: [10] Failed\r\n"
        "   Last error: Timed out\r\n\r\n"
        "Writer name: 'WMI Writer'\r\n"
        "   Writer Id: {a6ad56c2-b509-4e6c-bb19-49d8f43532f0}\r\n"
        "   Writer Instance Id: {11111111-1111-2222-3333-444444444444}\r\n"
        "   State: [5] Waiting for completion\r\n"
        "   Last error: No error\r\n"
    )
    asr, wmi = parse_vss_writers(text)
    assert asr.state == 10 and asr.state_name == "FAILED_AT_THAW" and not asr.healthy
    assert asr.writer_id == "be000cbe-11fe-4426-9c58-531aa6355fc4"
    assert wmi.state == 5 and wmi.healthy


def test_writers_stable_with_error_is_not_healthy_and_unknown_text_is_neutral() -> None:
    text = (
        "Naam: 'System Writer'\n  Id: {e8132975-6f93-4464-a53e-1050253ae220}\n"
        "  Inst: {eb6b4c30-aa48-486a-9618-0d1934d180ca}\n  Status: [1] Stabiel\n  Laatste: Retryable error\n"
        "Naam: 'Registry Writer'\n  Id: {afbab4a2-367d-4d15-a586-71dbb18f8485}\n"
        "  Inst: {d3faa119-61c1-4ec4-b163-68b43efad58b}\n  Status: [1] Stabiel\n  Laatste: iets onbekends\n"
    )
    sysw, reg = parse_vss_writers(text)
    assert sysw.state == 1 and sysw.last_error_ok is False and not sysw.healthy
    assert reg.last_error_ok is None and reg.healthy


def test_writers_garbage_gives_nothing() -> None:
    assert parse_vss_writers("") == []
    assert parse_vss_writers("Error: Access is denied.\n") == []


def test_writer_without_state_number_is_unreadable() -> None:
    text = "W: 'X'\n {e8132975-6f93-4464-a53e-1050253ae220}\n {eb6b4c30-aa48-486a-9618-0d1934d180ca}\n State: ?\n"
    (w,) = parse_vss_writers(text)
    assert w.state is None and w.state_name == "UNREADABLE" and not w.healthy


# --- vssadmin list shadowstorage ---------------------------------------------------------------


def test_shadowstorage_english_sample_with_console_wrap() -> None:
    (assoc,) = parse_shadowstorage(sample("vssadmin_list_shadowstorage_en_1.txt"))
    guid = "\\\\?\\Volume{986da89b-2336-4410-9417-d5dbf1f5f3e5}\\"
    assert assoc.for_volume == guid and assoc.for_drive == "C:"
    assert assoc.storage_volume == guid and assoc.storage_drive == "C:"
    assert assoc.used.bytes == round(2.06 * 1024**3) and assoc.used.percent == 1.0
    assert assoc.allocated.bytes == round(2.53 * 1024**3)
    assert assoc.maximum.bytes == round(11.8 * 1024**3) and assoc.maximum.percent == 8.0
    assert not assoc.maximum.unbounded


@pytest.mark.parametrize(
    ("text", "expected_bytes", "percent", "unbounded"),
    [
        ("2.06 GB (1%)", round(2.06 * 1024**3), 1.0, False),
        ("11,8 Go (8 %)", round(11.8 * 1024**3), 8.0, False),
        ("1.335 GB", round(1.335 * 1024**3), None, False),
        ("512 MB (0%)", 512 * 1024**2, 0.0, False),
        ("0 B (0%)", 0, 0.0, False),
        ("UNBOUNDED (100%)", None, 100.0, True),
        ("3.5 XQ (2%)", None, 2.0, False),
        ("", None, None, False),
    ],
)
def test_parse_size(text: str, expected_bytes: int | None, percent: float | None, unbounded: bool) -> None:
    size = parse_size(text)
    assert size.bytes == expected_bytes
    assert size.percent == percent
    assert size.unbounded is unbounded


def test_shadowstorage_unknown_unit_is_unparsed_not_zero() -> None:
    text = (
        "Shadow Copy Storage association\n"
        "   For volume: (D:)\\\\?\\Volume{11111111-2222-3333-4444-555555555555}\\\n"
        "   Shadow Copy Storage volume: (D:)\\\\?\\Volume{11111111-2222-3333-4444-555555555555}\\\n"
        "   Used Shadow Copy Storage space: 0 zz (0%)\n"
        "   Allocated Shadow Copy Storage space: 1,5 Go (1%)\n"
        "   Maximum Shadow Copy Storage space: UNBOUNDED (100%)\n"
    )
    (assoc,) = parse_shadowstorage(text)
    assert assoc.for_drive == "D:"
    assert assoc.used.bytes is None
    assert assoc.allocated.bytes == round(1.5 * 1024**3)
    assert assoc.maximum.unbounded and assoc.maximum.bytes is None


def test_shadowstorage_no_association() -> None:
    assert parse_shadowstorage("vssadmin 1.1\n\nNo items found that satisfy the query.\n") == []


# --- w32tm /query /status --------------------------------------------------------------------


def test_w32tm_sample_nist_with_prompt_line() -> None:
    st = parse_w32tm_status(sample("w32tm_query_status_en_1.txt"))
    assert st is not None
    assert (st.leap_indicator, st.stratum, st.poll_interval) == (0, 2, 6)
    assert st.reference_id == 0x84A36102 and st.reference_source == "132.163.97.2"
    assert st.last_sync_text == "5/30/2025 09:07:01"
    assert st.source == "time.nist.gov"
    assert st.synchronized and not st.local_clock


def test_w32tm_sample_pool_ntp() -> None:
    st = parse_w32tm_status(sample("w32tm_query_status_en_3_poolntp.txt"))
    assert st is not None
    assert (st.leap_indicator, st.stratum, st.poll_interval) == (0, 3, 10)
    assert st.reference_id == 0xBC7D4007 and st.reference_source == "188.125.64.7"
    assert st.source == "pool.ntp.org"
    assert st.last_sync_text == "5/27/2024 11:05:14 PM"
    assert st.synchronized


def test_w32tm_sample_verbose() -> None:
    st = parse_w32tm_status(sample("w32tm_query_status_verbose_en_4_checkmk_synced.txt"))
    assert st is not None
    assert (st.stratum, st.reference_id, st.source) == (4, 0x14653909, "time.windows.com")
    assert st.phase_offset_s == pytest.approx(-0.0038147)
    assert st.state_machine == 1 and st.last_sync_error == 2
    assert st.seconds_since_good_sync == pytest.approx(2820.199748)
    assert st.synchronized


def test_w32tm_localized_labels_local_clock() -> None:
    text = (
        "Indicateur de saut : 3(non synchronisé)\n"
        "Strate : 1 (référence principale - synchronisée par horloge radio)\n"
        "Précision : -23 (119.209ns par battement)\n"
        "Délai de racine : 0.0000000s\n"
        "Dispersion de racine : 10.0000000s\n"
        'ID de référence : 0x4C4F434C (nom de la source :  "LOCL")\n'
        "Dernière synchronisation réussie : non spécifié\n"
        "Source : Local CMOS Clock\n"
        "Intervalle d'interrogation : 6 (64s)\n"
    )
    st = parse_w32tm_status(text)
    assert st is not None
    assert st.leap_indicator == 3 and st.stratum == 1
    assert st.reference_source == "LOCL" and st.local_clock
    assert not st.ever_synced and not st.synchronized


def test_w32tm_wrapped_value_and_no_space_after_colon() -> None:
    text = (
        "Schaltsekundenindikator:0(keine Warnung)\n"
        "Stratum:2 (Sekundärreferenz - synchr. über (S)NTP)\n"
        "Präzision:-23 (119.209ns pro Tick)\n"
        "Stammverzögerung:0.0312s\n"
        "Stammabweichung:7.8s\n"
        "Referenz-ID:0x0A000001 (Quell-IP:  10.0.0.1)\n"
        "Letzte erfolgr. Synchronisierungszeit:23.11.2026\n"
        "06:01:02\n"
        "Quelle:dc01.corp.example,0x8\n"
        "Abrufintervall:10 (1024s)\n"
    )
    st = parse_w32tm_status(text)
    assert st is not None
    assert st.stratum == 2 and st.reference_id == 0x0A000001
    assert st.last_sync_text == "23.11.2026 06:01:02"
    assert st.source == "dc01.corp.example" and st.poll_interval == 10
    assert st.synchronized


def test_w32tm_error_text_gives_none() -> None:
    assert parse_w32tm_status("The following error occurred: The service has not been started. (0x80070426)") is None
