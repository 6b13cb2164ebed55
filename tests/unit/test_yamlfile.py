"""The one YAML loader: lines for every key, bounded size/expansion/depth, clear errors with file and line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleetcheck.errors import UserError
from fleetcheck.playbook import PlaybookError, load_playbook, parse_playbook
from fleetcheck.waivers import WaiverFileError, parse_waivers
from fleetcheck.yamlfile import (
    MarkedDict,
    MarkedList,
    VaultValue,
    YamlFileError,
    line_of,
    load_yaml,
    parse_yaml,
)


def error_of(text: str) -> YamlFileError:
    with pytest.raises(YamlFileError) as info:
        parse_yaml(text, "f.yml")
    return info.value


def test_every_key_and_item_knows_its_line() -> None:
    data = parse_yaml("a: 1\nb:\n  c: [x,\n      y]\n  d:\n    - 3\n    - 4\n", "f.yml")
    assert isinstance(data, MarkedDict)
    assert line_of(data, ["a"]) == 1 and line_of(data, ["b", "c"]) == 3
    assert line_of(data, ["b", "d", 1]) == 7
    assert line_of(data, ["b", "nope"]) == 2


def test_errors_are_user_errors_with_file_and_line() -> None:
    err = error_of("a: 1\nb: [1, 2\n")
    assert isinstance(err, UserError) and err.source == "f.yml" and err.line == 3
    assert str(err).startswith("f.yml, line 3: not valid YAML")


def test_billion_laughs_playbook_is_refused_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    text = "\n".join(lines) + "\nname: x\nchecks: {bomb: *i}\n"
    assert len(text.encode()) < 500  # 9**9 = 387 million strings once expanded
    started = time.perf_counter()
    with pytest.raises(PlaybookError, match="expands to more than"):
        parse_playbook(text, "bomb.yml")
    assert time.perf_counter() - started < 0.5


def test_merge_key_then_an_overriding_key_is_allowed() -> None:
    text = "base: &base\n  port: 5985\n  scheme: http\nhost:\n  <<: *base\n  port: 5986\n"
    data = parse_yaml(text, "f.yml")
    assert data["host"] == {"port": 5986, "scheme": "http"}
    assert line_of(data, ["host", "port"]) == 6 and line_of(data, ["host", "scheme"]) == 3


def test_merge_of_a_list_keeps_the_first_mapping_first() -> None:
    text = "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n"
    assert parse_yaml(text, "f.yml")["c"] == {"x": 1, "y": 1, "z": 2}


def test_a_key_written_twice_by_hand_is_still_an_error() -> None:
    err = error_of("a:\n  k: 1\n  k: 2\n")
    assert err.line == 3 and err.key == "k" and "appears twice" in str(err) and "first on line 2" in str(err)


def test_merge_of_a_scalar_is_refused() -> None:
    assert "merge key" in str(error_of("a: &a 1\nb:\n  <<: *a\n"))


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 5000))])
def test_nesting_5000_deep_is_an_error_not_a_recursion_error(text: str) -> None:
    err = error_of(text)
    assert "nests deeper than" in str(err) and err.line is not None


def test_deep_nesting_built_from_aliases_is_refused() -> None:
    lines = ["a0: &a0 " + "[" * 60 + "]" * 60]
    lines += [f"a{i}: &a{i} " + "[" * 60 + f"*a{i - 1}" + "]" * 60 for i in range(1, 4)]
    assert "nests deeper than" in str(error_of("\n".join(lines) + "\n"))


def test_recursive_alias_is_refused() -> None:
    assert "loop" in str(error_of("a: &a [1, *a]\n"))


@pytest.mark.parametrize(("text", "line"), [("a: 1\nb: x\x00y\n", 2), ("a: 1\n\nc: \x07\n", 3)])
def test_nul_and_control_bytes_name_the_line(text: str, line: int) -> None:
    err = error_of(text)
    assert err.line == line and "control character" in str(err)


def test_dev_zero_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    zero = Path("/dev/zero")
    if not zero.exists():
        pytest.skip("no /dev/zero")
    started = time.perf_counter()
    with pytest.raises(YamlFileError, match="larger than"):
        load_yaml(zero)
    with pytest.raises(PlaybookError, match="larger than"):
        load_playbook(zero)
    assert time.perf_counter() - started < 2


def test_vault_is_an_opaque_marker() -> None:
    data = parse_yaml("password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n", "f.yml")
    assert isinstance(data["password"], VaultValue) and "6162" not in repr(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError, match="file not found"):
        load_yaml(tmp_path / "nope.yml")
    bad = tmp_path / "latin.yml"
    bad.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(YamlFileError) as info:
        load_yaml(bad)
    assert info.value.line == 2 and "UTF-8" in str(info.value)


def test_playbook_keys_must_be_text() -> None:
    with pytest.raises(PlaybookError, match="must be text") as info:
        parse_playbook("name: x\nchecks:\n  1: {}\n")
    assert info.value.line == 3


def test_waivers_use_the_same_limits() -> None:
    with pytest.raises(WaiverFileError, match=r"<w>:2: .*control character"):
        parse_waivers("waivers:\n  - check: \x00\n", "<w>")
    with pytest.raises(WaiverFileError, match="nests deeper"):
        parse_waivers("[" * 5000, "<w>")


def test_waivers_accept_merge_keys() -> None:
    text = (
        "waivers:\n"
        "  - &first\n    check: a\n    hosts: [x]\n    justification: patch window\n    expires: 2030-01-01\n"
        "  - <<: *first\n    check: b\n"
    )
    first, second = parse_waivers(text, "<w>")
    assert (first.check, second.check) == ("a", "b")
    assert second.justification == "patch window" and second.hosts == first.hosts


def test_inventory_merge_key_with_an_override(tmp_path: Path) -> None:
    from fleetcheck.inventory import load_inventory

    path = tmp_path / "inv.yml"
    path.write_text(
        "hosts:\n  A: &base {transport: psrp, port: 5985}\n  B:\n    <<: *base\n    port: 5986\n",
        encoding="utf-8",
    )
    inv = load_inventory(path)
    assert inv.host("A").port == 5985 and inv.host("B").port == 5986


def test_an_impossible_date_is_a_clear_error_not_a_crash() -> None:
    """YAML reads 2026-13-45 as a timestamp; the constructor's ValueError became a traceback."""
    with pytest.raises(YamlFileError) as caught:
        parse_yaml("name: x\nwhen: 2026-13-45\n", "pb.yml")
    assert caught.value.line == 2
    assert "quote it" in str(caught.value)
    with pytest.raises(YamlFileError):
        parse_yaml("2026-13-45: x\n", "pb.yml")


def _big(body: str) -> str:
    """`body` after 2,000 comment lines: marks far from the start must match too."""
    return "# padding\n" * 2000 + body


@pytest.mark.parametrize(
    "body",
    [
        "base: &b {port: 5986, tags: [x, 'y', 2026-01-02, 0x1F, ~, yes]}\nhosts:\n"
        + "".join(f"  h{i}:\n    <<: *b\n    port: {i}\n    note: !unsafe '{{{{ x }}}}'\n" for i in range(50))
        + "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n",
        "a:\n" + "".join(f"{'  ' * (d + 1)}k{d}:\n" for d in range(96)) + "  " * 98 + "leaf\n",
    ],
)
def test_a_large_document_loads_as_the_python_loader_does(body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetcheck.yamlfile as yf

    text = _big(body)
    fast = parse_yaml(text, "f.yml")
    monkeypatch.setattr(yf, "LIBYAML", False)
    slow = parse_yaml(text, "f.yml")
    assert repr(fast) == repr(slow)

    def lines(value: object) -> object:
        if isinstance(value, MarkedDict):
            return (value.line, dict(value.key_lines), {k: lines(v) for k, v in value.items()})
        if isinstance(value, MarkedList):
            return (value.line, list(value.item_lines), [lines(v) for v in value])
        return None

    assert lines(fast) == lines(slow)
    assert isinstance(fast, MarkedDict) and line_of(fast, ["hosts", "h3", "port"]) == line_of(slow, ["hosts", "h3", "port"])


@pytest.mark.parametrize(
    "body",
    [
        "a:\n  b: [1, 2\n c: 3\n",  # broken flow sequence
        "a: 1\na: 2\n",  # duplicate key
        "x: &a [*a]\n",  # undefined alias (libyaml) / loop
        "[" * 150 + "]" * 150 + "\n",  # deeper than MAX_DEPTH
        "a: 1\n---\nb: 2\n",  # two documents
        "a: \x00\n",  # a control character
    ],
)
def test_a_large_broken_document_gets_the_python_loaders_error(body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetcheck.yamlfile as yf

    text = _big(body)
    fast = error_of(text)
    monkeypatch.setattr(yf, "LIBYAML", False)
    slow = error_of(text)
    assert str(fast) == str(slow)


def test_a_document_is_composed_by_libyaml_when_there() -> None:
    import yaml

    import fleetcheck.yamlfile as yf

    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    node = yf._compose_fast(_big("a: [1, 2]\n"))
    assert node is not None and node.start_mark.line == 2000
    small = yf._compose_fast("a: [1, 2]\n")  # a playbook-sized text too: every run loads one
    assert small is not None and small.start_mark.line == 0
