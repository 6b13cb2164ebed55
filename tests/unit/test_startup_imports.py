"""A plain `fleetcheck run` loads only what it uses: start-up is a fifth of a 200-host run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Each costs 10-50 ms of import and serves an option or command the run below does not use.
NOT_FOR_A_PLAIN_RUN = (
    "fleetcheck.nightly",  # history, changes, mail: only with history, waivers or mail
    "sqlite3",
    "smtplib",
    "fleetcheck.dispatch",  # sites and shards
    "jinja2",  # templated inventory values
    "tabulate",  # `fleetcheck inventory` / `checks` tables, skipped hosts
    "regex",  # custom checks with `matches`
    "rich.console",  # the terminal tables (quiet prints one line)
    "Cryptodome",  # MD4: fleetcheck.transports.psrp_client.md4
)

SCRIPT = """
import json, sys
from fleetcheck import cli
code = cli.main(["run", sys.argv[1], "--no-history", "--quiet", "--report", "json:" + sys.argv[2]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_a_plain_run_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(
        "vars: {transport: psrp, scheme: http, port: 9, auth: ntlm, username: u, password: p, timeout: 5}\n"
        "hosts:\n  down: {address: 127.0.0.1}\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(inv), str(tmp_path / "r.json")],
        capture_output=True, text=True, check=True, timeout=60,
    )
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["code"] == 3 and json.loads((tmp_path / "r.json").read_text())["hosts"][0]["status"] == "unreachable"
    loaded = [m for m in NOT_FOR_A_PLAIN_RUN if any(n == m or n.startswith(m + ".") for n in got["modules"])]
    assert loaded == []
    assert "fleetcheck.transports.psrp_client.session" in got["modules"]  # the run did reach the client
