"""Waivers: parsing with line-numbered errors, applying valid ones, expired ones stop applying."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from test_history import make_run

from fleetcheck.results import CheckStatus, HostStatus
from fleetcheck.waivers import WaiverFileError, apply_waivers, load_waivers, parse_waivers

P, F, E = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.ERROR
TODAY = date(2026, 11, 23)

GOOD = """\
waivers:
  - check: wsb-feature
    hosts: ["legacy-*"]
    justification: Replaced by Veeam until the migration (CHG-1234)
    expires: 2026-12-31
  - check: "service-*"
    groups: web
    justification: Vendor image, fixed in next rebuild
    expires: 2026-11-23
  - check: dotnet-version
    hosts: [app1]
    justification: Old line-of-business app needs 4.5
    expires: 2026-11-22
"""


def run():
    r = make_run(
        "r",
        0,
        {
            "legacy-1": {"wsb-feature": F, "dotnet-version": P},
            "legacy-2": {"wsb-feature": F, "dotnet-version": F},
            "app1": {"wsb-feature": P, "dotnet-version": F},
            "web9": {"service-vss": E, "wsb-feature": P},
            "dead": HostStatus.UNREACHABLE,
        },
    )
    # make_run puts every host in group "web"; keep web9 only in it
    for h in r.hosts:
        if h.host != "web9":
            h.groups = ["sql"]
    return r


def statuses(r, host):
    h = next(h for h in r.hosts if h.host == host)
    return h.status, {c.check_id: c.status for c in h.checks}


def test_parse_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(GOOD)
    waivers = load_waivers(path)
    assert [w.check for w in waivers] == ["wsb-feature", "service-*", "dotnet-version"]
    assert waivers[1].groups == ["web"]  # a single string is accepted as a list
    assert waivers[0].expires == date(2026, 12, 31)
    assert [w.line for w in waivers] == [2, 6, 10]


def test_valid_waivers_apply_and_host_becomes_compliant() -> None:
    waived, notes = apply_waivers(run(), parse_waivers(GOOD), TODAY)
    assert statuses(waived, "legacy-1") == (HostStatus.COMPLIANT, {"wsb-feature": "waived", "dotnet-version": "pass"})
    assert next(h for h in waived.hosts if h.host == "legacy-1").message == "1 checks passed, 1 waived"
    # legacy-2 still fails dotnet-version: stays noncompliant, wsb-feature waived
    assert statuses(waived, "legacy-2") == (
        HostStatus.NONCOMPLIANT,
        {"wsb-feature": "waived", "dotnet-version": "fail"},
    )
    # group glob + check glob; the expiry day itself still counts
    assert statuses(waived, "web9")[1]["service-vss"] == "waived"
    check = next(c for h in waived.hosts if h.host == "legacy-1" for c in h.checks if c.check_id == "wsb-feature")
    assert check.waiver == "Replaced by Veeam until the migration (CHG-1234) (until 2026-12-31)"
    assert check.message == "wsb-feature: fail"  # the finding itself is kept
    assert any("service-* on group web (line 6) expires on 2026-11-23" in n for n in notes)


def test_expired_waiver_stops_applying_and_says_so() -> None:
    waived, notes = apply_waivers(run(), parse_waivers(GOOD), TODAY)
    assert statuses(waived, "app1") == (HostStatus.NONCOMPLIANT, {"wsb-feature": "pass", "dotnet-version": "fail"})
    assert (
        "waiver dotnet-version on app1 (line 10) expired on 2026-11-22 and no longer applies; "
        "1 failing result(s) it covered now count again."
    ) in notes


def test_original_run_is_not_modified() -> None:
    original = run()
    apply_waivers(original, parse_waivers(GOOD), TODAY)
    assert statuses(original, "legacy-1")[1]["wsb-feature"] == "fail"


def test_no_waivers_is_identity() -> None:
    r = run()
    waived, notes = apply_waivers(r, [], TODAY)
    assert waived.model_dump() == r.model_dump() and notes == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("waivers:\n  - check: a\n    hosts: [x]\n    expires: 2026-01-01\n", r"<w>:2: waiver #1: `justification`: is required"),
        (
            "waivers:\n  - check: a\n    hosts: [x]\n    justification: ok\n    expires: next week\n",
            r"<w>:5: waiver #1: `expires`: not a date; write it as YYYY-MM-DD",
        ),
        (
            "waivers:\n  - check: a\n    justification: ok\n    expires: 2026-01-01\n",
            r"<w>:2: waiver #1: give `hosts` and/or `groups`",
        ),
        (
            "waivers:\n  - check: a\n    hosts: [x]\n    justification: ok\n    expires: 2026-01-01\n    owner: me\n",
            r"<w>:6: waiver #1: `owner`: unknown key",
        ),
        ("waivers:\n  - check: a\n    hosts: [x\n", r"<w>:\d+: not valid YAML"),
        ("waiverz: []\n", r"<w>:1: unknown top-level key"),
        ("waivers:\n  - just a string\n", r"<w>:2: waiver #1 must be a mapping"),
        ("waivers:\n  - check: a\n    hosts: [x]\n    justification: '  '\n    expires: 2026-01-01\n", r"<w>:4: .*justification must say why"),
    ],
)
def test_errors_name_file_line_and_fix(text: str, message: str) -> None:
    with pytest.raises(WaiverFileError, match=message):
        parse_waivers(text, "<w>")


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(WaiverFileError, match="cannot read waivers file"):
        load_waivers(tmp_path / "nope.yml")


def test_top_level_list_and_empty_file() -> None:
    assert parse_waivers("") == []
    assert len(parse_waivers("- check: a\n  hosts: x\n  justification: y\n  expires: 2030-01-01\n")) == 1


def test_waiver_for_unknown_check_is_flagged() -> None:
    typo = parse_waivers("- check: wsb-featur\n  hosts: x\n  justification: y\n  expires: 2030-01-01\n")
    _, notes = apply_waivers(run(), typo, TODAY)
    assert notes == ["waiver wsb-featur on x (line 1): no check of this run is called 'wsb-featur' (a typo?)."]
