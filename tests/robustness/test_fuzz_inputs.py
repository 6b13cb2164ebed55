"""Property tests: every file a user gives us, mangled, ends with exit 0-3 and a message.

Seeds are valid files of each kind; hypothesis mutates them (hostile characters, cut lines,
duplicated lines, deep nesting, huge numbers, aliases) or replaces them with random YAML/JSON
documents. Everything runs in-process through the CLI (typer's CliRunner) or the library API,
so each example costs milliseconds; a traceback, an exit 4 or an exception other than our
UserError fails the property.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcheck.errors import UserError
from fleetcheck.waivers import load_waivers
from robustness.cli_helpers import cli

NATIVE_INVENTORY = """\
vars: {username: ops, password_env: FC_FUZZ_PW, scheme: http, timeout: 1}
groups:
  web:
    vars: {port: 9}
    hosts:
      WEB01: {address: 127.0.0.1}
      WEB02: {address: 127.0.0.2, tags: [a]}
hosts:
  DB01: {address: 127.0.0.1, port: 9}
"""
ANSIBLE_INVENTORY = """\
all:
  vars: {ansible_user: ops, ansible_connection: winrm, ansible_port: 9}
  children:
    web:
      hosts:
        web[01:03]:
          ansible_host: 127.0.0.1
    db:
      hosts:
        db1: {ansible_host: 127.0.0.1}
"""
PLAYBOOK = """\
name: fuzz
checks:
  wsb-feature: {severity: high}
  service-vss:
    params: {start_modes: [Manual]}
custom_checks:
  - id: custom-x
    title: x
    script: "Write-Output 1"
    expect: {path: a.b, matches: '^x+$'}
"""
WAIVERS = """\
waivers:
  - check: wsb-feature
    hosts: ["legacy-*"]
    justification: Replaced by Veeam (CHG-1234)
    expires: 2026-12-31
"""
FACTS = json.dumps({"schema": "fleetcheck/facts/v1", "host": {"computer_name": "H1"}, "probes": {}})
REPORT = json.dumps({"schema": "fleetcheck/report/v1", "run_id": "r", "started_at": "2026-11-30T02:00:00+00:00",
                     "hosts": [{"host": "h", "status": "compliant", "checks": []}]})
JOURNAL = (
    '{"record": "run", "run_id": "r", "started_at": "2026-11-30T02:00:00+00:00"}\n'
    '{"record": "host", "run_id": "r", "result": {"host": "h", "status": "compliant"}}\n'
    '{"record": "end", "run_id": "r", "interrupted": false}\n'
)
ENV = {"FC_FUZZ_PW": "Sentinel-Pw1"}

HOSTILE_TOKENS = [
    "\x00", "\x1b]0;x\x07", "\ufeff", "\ud800", "&a", "*a", "&a [*a, *a]", "<<: *a", "!!python/object:os.system",
    "!vault |", "9" * 400, "-1e999", "[" * 200, "{" * 200, "'", '"', "\t", ": :", "- -", "? ", "%YAML 1.1",
    "web[0:99999999]", "w[0:9999]x[0:999]", "127.0.0.77/x", "a" * 300, "null", "~", "true", "2026-13-45",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, seed: str) -> str:
    """A valid seed with a few hostile edits, or a random document of the same family."""
    if draw(st.integers(0, 5)) == 0:
        value: Any = draw(json_values)
        return yaml.safe_dump(value) if draw(st.booleans()) else json.dumps(value)
    lines = seed.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "replace", "delete", "duplicate", "truncate"]))
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        token = draw(st.sampled_from(HOSTILE_TOKENS) | st.text(max_size=8))
        if not lines:
            lines = [token]
        elif kind == "insert":
            line = lines[at]
            cut = draw(st.integers(0, len(line)))
            lines[at] = line[:cut] + token + line[cut:]
        elif kind == "replace":
            lines[at] = lines[at].split(":")[0] + ": " + token + "\n"
        elif kind == "delete":
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, lines[at])
        else:
            lines = lines[:at]
    return "".join(lines)


FUZZ = settings(max_examples=int(os.environ.get("FC_FUZZ_EXAMPLES", "30")), deadline=5000, suppress_health_check=list(HealthCheck), database=None)


def _file(text: str, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fc-fuzz-"))
    path = folder / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def _bounded(args: list[str]) -> None:
    started = time.monotonic()
    code, out = cli(*args, env=ENV)
    assert time.monotonic() - started < 10, args
    assert code == 0 or out.strip(), "a failure without a message"


@FUZZ
@given(mutated(NATIVE_INVENTORY))
def test_native_inventory(text: str) -> None:
    _bounded(["inventory", str(_file(text, "inv.yml"))])


@FUZZ
@given(mutated(ANSIBLE_INVENTORY))
def test_ansible_inventory(text: str) -> None:
    _bounded(["inventory", str(_file(text, "hosts.yml"))])


@FUZZ
@given(mutated(PLAYBOOK))
def test_playbook(text: str) -> None:
    _bounded(["checks", "-p", str(_file(text, "pb.yml"))])


@FUZZ
@given(mutated(WAIVERS))
def test_waivers(text: str) -> None:
    try:
        load_waivers(_file(text, "waivers.yml"))
    except UserError as exc:
        assert str(exc)


@FUZZ
@given(mutated(FACTS))
def test_saved_facts(text: str) -> None:
    path = _file(text, "H1.json")
    _bounded(["evaluate", str(path.parent)])


@FUZZ
@given(mutated(REPORT))
def test_json_report(text: str) -> None:
    _bounded(["report", str(_file(text, "run.json")), "-f", "table"])


@FUZZ
@given(mutated(JOURNAL))
def test_journal(text: str) -> None:
    _bounded(["report", str(_file(text, "run.jsonl")), "-f", "junit"])


def test_fuzzing_stayed_within_memory() -> None:
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 1500
