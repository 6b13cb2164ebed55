"""`run --shard K/N` on every part and `fleetcheck merge` give the run of the whole fleet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.cli import main
from fleetcheck.history import History
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    for key in ("run_id", "started_at", "finished_at"):
        data.pop(key)
    for host in data["hosts"]:
        host.pop("started_at")
        host.pop("duration_s")
        for check in host["checks"]:
            if isinstance(check["observed"], dict):  # the lab's wall-clock facts
                check["observed"].pop("end_time", None)
                check["observed"].pop("skew_s", None)
    data["hosts"].sort(key=lambda h: h["host"])
    data["check_ids"].sort()
    return data


async def test_three_shards_merged_equal_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async with LabFleet(7, mix={"healthy-2019": 5, "wsb-missing": 2}, addressing="ports", seed=3) as fleet:
        monkeypatch.setenv(PASSWORD_ENV, fleet.password)
        inv = fleet.write_inventory(tmp_path / "lab.yml")
        common = ["--no-history", "--quiet", "--journal", str(tmp_path / "j.jsonl")]

        def cli(*args: str) -> int:
            return main(list(args))

        codes = [
            await asyncio.to_thread(cli, "run", str(inv), "--shard", f"{k}/3", "--report", f"json:{tmp_path}/part{k}.json", *common)
            for k in (1, 2, 3)
        ]
        whole = await asyncio.to_thread(cli, "run", str(inv), "--report", f"json:{tmp_path}/whole.json", *common)
    parts = [json.loads((tmp_path / f"part{k}.json").read_text()) for k in (1, 2, 3)]
    assert sorted(len(p["hosts"]) for p in parts) != [0, 0, 7]  # the hosts really were spread
    assert all(p["inventory"].endswith(f" --shard {k}/3") for k, p in zip((1, 2, 3), parts, strict=True))

    db = tmp_path / "history.db"
    merged_code = main(["merge", *(str(tmp_path / f"part{k}.json") for k in (1, 2, 3)),
                        "--history", str(db), "--report", f"json:{tmp_path}/merged.json"])
    assert merged_code == whole == 1  # noncompliant hosts, like the single run
    assert max(codes) == 1
    merged = json.loads((tmp_path / "merged.json").read_text())
    single = json.loads((tmp_path / "whole.json").read_text())
    assert comparable(merged) == comparable(single)
    with History(db) as history:
        recorded = history.get(history.resolve("last"))
    assert sorted(h.host for h in recorded.hosts) == sorted(h["host"] for h in single["hosts"])
    assert recorded.inventory == single["inventory"]

    # a missing part is named, a part given twice refused: exit 2, nothing recorded
    assert main(["merge", str(tmp_path / "part1.json"), str(tmp_path / "part3.json"), "--history", str(db)]) == 2
    assert main(["merge", str(tmp_path / "part1.json"), str(tmp_path / "part1.json"), str(tmp_path / "part2.json"),
                 str(tmp_path / "part3.json")]) == 2
    with History(db) as history:
        assert len(history.list_runs()) == 1
