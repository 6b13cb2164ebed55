"""Inventory loading: native and Ansible formats, inheritance, errors with lines, credentials, redaction."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetcheck.inventory import InventoryError, find_inventory, load_credentials, load_inventory
from fleetcheck.inventory.show import render_inventory
from fleetcheck.inventory.sources.base import expand_hostpattern as expand_host_pattern

SECRET = "S3cret-Value-9f1"


def write(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


NATIVE = """\
    playbooks: [system-state-backup]
    vars:
      transport: psrp
      scheme: http
      username: fleetcheck
      password_env: FC_TEST_PW
      tags: [all]
    groups:
      datacenter-a:
        vars: {scheme: https, timeout: 30, tags: [dc-a]}
        hosts:
          SRV01: {address: 127.0.1.1}
        groups:
          web:
            vars: {port: 15986, tags: [web]}
            hosts:
              SRV02: {address: 127.0.1.2, timeout: 10}
    hosts:
      SRV03: {address: 127.0.1.3, transport: ssh}
      SRV04: {}
    waivers: waivers.yml
    """


def test_native_inheritance_outer_to_inner_then_host(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, NATIVE))
    assert inv.fmt == "native"
    assert inv.playbooks == ["system-state-backup"]
    assert inv.waivers == tmp_path / "waivers.yml"
    srv01, srv02, srv03, srv04 = (inv.host(n) for n in ("SRV01", "SRV02", "SRV03", "SRV04"))
    assert (srv01.scheme, srv01.timeout, srv01.effective_port) == ("https", 30, 5986)
    assert (srv02.scheme, srv02.timeout, srv02.port) == ("https", 10, 15986)
    assert srv02.groups == ["datacenter-a", "web"]
    assert srv02.tags == ["all", "dc-a", "web"]
    assert srv03.transport == "ssh" and srv03.auth == "password" and srv03.effective_port == 22
    assert srv04.address == "SRV04" and srv04.scheme == "http" and srv04.effective_port == 5985
    assert all(h.username == "fleetcheck" and h.password_env == "FC_TEST_PW" for h in inv.hosts)
    assert inv.groups == {"datacenter-a": ["SRV01", "SRV02"], "web": ["SRV02"]}


def test_port_5985_without_scheme_means_http(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts:\n  A: {port: 5985}\n  B: {}\n"))
    assert inv.host("A").scheme == "http"
    assert inv.host("B").scheme == "https" and inv.host("B").effective_port == 5986


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("vars:\n  transport: psrp\nhosts:\n  A:\n    prot: 5985\n", 5, "hosts.A.prot", "unknown key"),
        ("hosts:\n  A:\n    transport: telnet\n", 3, "hosts.A.transport", "'psrp', 'winrm' or 'ssh'"),
        ("vars:\n  port: 99999\nhosts: {A: {}}\n", 2, "vars.port", "less than or equal to 65535"),
        ("groups:\n  g:\n    vars: {timeout: -1}\n    hosts: {A: {}}\n", 3, "groups.g.vars.timeout", "greater than 0"),
        ("groups:\n  g:\n    host: {A: {}}\n", 3, "groups.g.host", "unknown key"),
        ("hosts:\n  A: {}\n  A: {}\n", 3, "A", "appears twice"),
        ("hosts:\n  A: {transport: ssh, auth: ntlm}\n", 2, "A.auth", "does not apply to ssh"),
        ("hosts:\n  A: [1, 2\n", 3, None, "not valid YAML"),
        ("hostz:\n  A: {}\n", 1, "hostz", "unknown key"),
    ],
)
def test_errors_name_file_line_key(tmp_path: Path, text: str, line: int, key: str | None, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    err = info.value
    assert err.path == path
    assert err.line == line
    assert err.key == key
    assert words in str(err)
    assert str(path) in str(err) and f"line {line}" in str(err)


def test_empty_and_hostless_inventories_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="empty"):
        load_inventory(write(tmp_path, ""))
    with pytest.raises(InventoryError, match="no host"):
        load_inventory(write(tmp_path, "vars: {transport: psrp}\n"))


def test_bad_password_value_is_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, f"hosts:\n  A: {{password: [{SECRET}]}}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert SECRET not in str(info.value)
    assert info.value.line == 2


ANSIBLE = """\
    all:
      vars:
        ansible_connection: winrm
        ansible_winrm_transport: [kerberos, ntlm]
        ansible_user: 'CORP\\svc-fleet'
        ansible_become: true
        ansible_shell_type: powershell
        fleetcheck_password_env: FC_TEST_PW
        site: paris
        db_password: hunter2-custom
      children:
        web:
          hosts:
            web[01:03].corp.example:
              ansible_port: 5985
        databases:
          vars:
            ansible_connection: psrp
            ansible_psrp_auth: ntlm
            ansible_psrp_cert_validation: ignore
            ansible_psrp_protocol: https
            ansible_password: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              62313365396662343061393464336163
          hosts:
            db1: {ansible_host: 127.0.0.9, ansible_port: 15986}
            web01.corp.example:
        linux:
          hosts:
            jump: {ansible_connection: ssh, ansible_ssh_private_key_file: /k/id, ansible_host_key_checking: false}
    """


def test_ansible_inventory_maps_what_we_support(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, ANSIBLE))
    assert inv.fmt == "ansible"
    assert [h.name for h in inv.hosts] == [
        "web01.corp.example", "web02.corp.example", "web03.corp.example", "db1", "jump",
    ]
    web1, web2 = inv.host("web01.corp.example"), inv.host("web02.corp.example")
    db1, jump = inv.host("db1"), inv.host("jump")
    assert (web2.transport, web2.auth, web2.scheme, web2.port) == ("winrm", "kerberos", "http", 5985)
    assert web2.username == "CORP\\svc-fleet" and web2.password_env == "FC_TEST_PW"
    # a host in two groups at one depth: name order, so web's (none) would beat databases' (psrp)
    assert web1.groups == ["databases", "web"]
    assert (web1.transport, web1.auth, web1.port) == ("psrp", "ntlm", 5985)
    # ansible_winrm_* keys do not leak into a psrp host, ansible_psrp_* do
    assert (db1.transport, db1.auth, db1.scheme, db1.cert_validation) == ("psrp", "ntlm", "https", False)
    assert (db1.address, db1.port) == ("127.0.0.9", 15986)
    assert db1.password is None  # vaulted and no vault password given: left out, with a warning
    assert (jump.transport, jump.auth, str(jump.key_path)) == ("ssh", "key", "/k/id")
    assert jump.ssh_known_hosts == "accept"
    assert web1.vars["site"] == "paris"
    assert sorted(inv.groups["databases"]) == ["db1", "web01.corp.example"]


def test_ansible_ignored_and_vaulted_keys_are_named(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, ANSIBLE))
    text = "\n".join(inv.warnings)
    assert "ansible_become" in text and "ansible_shell_type" not in text  # the shell type is used
    assert "vault-encrypted 'ansible_password' left out" in text
    assert "2 hosts (web01.corp.example, db1)" in text


def test_ansible_errors_point_at_the_ansible_key(tmp_path: Path) -> None:
    path = write(tmp_path, "all:\n  hosts:\n    a:\n      ansible_connection: winrm\n      ansible_port: http\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert (info.value.line, info.value.key) == (5, "ansible_port")
    inv = load_inventory(write(tmp_path, "all:\n  vars:\n    ansible_connection: local\n  hosts: {a: }\n"))
    assert inv.hosts == [] and inv.skipped == {"a": "local"}


def test_top_level_groups_without_all_are_ansible(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "windows:\n  hosts:\n    w1: {ansible_host: 127.0.0.5, ansible_connection: psrp}\n"))
    assert inv.fmt == "ansible" and inv.host("w1").address == "127.0.0.5"
    assert inv.groups == {"ungrouped": [], "windows": ["w1"]}


def test_host_range_expansion() -> None:
    assert expand_host_pattern("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert expand_host_pattern("w[08:10]") == ["w08", "w09", "w10"]
    assert expand_host_pattern("w[1:5:2]x") == ["w1x", "w3x", "w5x"]
    assert expand_host_pattern("plain") == ["plain"]


def test_inline_password_works_but_warns_and_is_redacted(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, f"hosts:\n  A: {{username: u, password: '{SECRET}', auth: ntlm}}\n"))
    assert inv.host("A").password is not None
    assert inv.host("A").password.get_secret_value() == SECRET
    assert any("password written in the inventory" in w for w in inv.warnings)
    shown = render_inventory(inv, inv.hosts) + repr(inv.hosts) + str(inv.hosts) + inv.hosts[0].model_dump_json()
    assert SECRET not in shown
    assert "inline (redacted)" in render_inventory(inv, inv.hosts)


def test_ansible_inline_password_and_custom_secret_vars_are_redacted(tmp_path: Path) -> None:
    inv = load_inventory(write(
        tmp_path, f"all:\n  hosts:\n    a: {{ansible_connection: winrm, ansible_password: '{SECRET}', my_token: '{SECRET}x'}}\n"
    ))
    assert SECRET not in repr(inv.hosts[0].password)
    shown = render_inventory(inv, inv.hosts)
    assert SECRET not in shown
    assert "********" in shown


def test_credentials_from_env_prompt_and_missing(tmp_path: Path) -> None:
    inv = load_inventory(
        write(
            tmp_path,
            """\
            hosts:
              A: {username: alice, password_env: FC_PW_A, auth: ntlm}
              B: {username: bob, auth: ntlm}
              C: {username: bob, auth: basic}
              K: {auth: kerberos}
              S: {transport: ssh, auth: key, key_path: /k}
            """,
        )
    )
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed-" + text.split()[-1].rstrip(":")

    hosts = load_credentials(inv.hosts, environ={"FC_PW_A": "from-env"}, ask_pass=True, prompt=prompt)
    by = {h.name: h for h in hosts}
    assert by["A"].password is not None and by["A"].password.get_secret_value() == "from-env"
    assert by["B"].password is not None and by["B"].password.get_secret_value() == "typed-bob"
    assert by["C"].password == by["B"].password
    assert asked == ["Password for bob: "]  # once per distinct username
    assert by["K"].password is None and by["S"].password is None

    with pytest.raises(InventoryError, match="FC_PW_A is not set") as info:
        load_credentials(inv.hosts[:1], environ={})
    assert "--ask-pass" in str(info.value)
    with pytest.raises(InventoryError, match="no password for B, C"):
        load_credentials(inv.hosts[1:], environ={})


def test_find_inventory_cwd_then_inventories(tmp_path: Path) -> None:
    (tmp_path / "inventories").mkdir()
    inner = write(tmp_path / "inventories", "hosts: {A: {}}\n", "prod.yml")
    assert find_inventory("prod.yml", tmp_path) == inner
    assert find_inventory("prod", tmp_path) == inner
    outer = write(tmp_path, "hosts: {B: {}}\n", "prod.yml")
    assert find_inventory("prod.yml", tmp_path) == outer
    with pytest.raises(InventoryError, match="not found") as info:
        find_inventory("nope.yml", tmp_path)
    assert "inventories" in str(info.value)


REPO = Path(__file__).resolve().parents[2]


def test_committed_inventories_load() -> None:
    lab = load_inventory(REPO / "inventories" / "lab.yml")
    assert len(lab.hosts) == 50 and lab.hosts[0].address == "127.0.1.1"
    assert all(h.password_env == "FLEETCHECK_LAB_PASSWORD" and h.password is None for h in lab.hosts)
    prod = load_inventory(REPO / "inventories" / "example-prod.yml")
    assert prod.fmt == "native" and prod.warnings == []
    assert {h.transport for h in prod.hosts} == {"psrp", "ssh"}
    assert prod.host("PAR-FS02").timeout == 300 and prod.host("PAR-FS02").tags == ["prod", "paris", "fs"]


def test_commented_ansible_example_is_a_valid_ansible_inventory(tmp_path: Path) -> None:
    text = (REPO / "inventories" / "example-prod.yml").read_text(encoding="utf-8")
    block = text[text.index("# all:") :]
    uncommented = "\n".join(line[2:] for line in block.splitlines())
    inv = load_inventory(write(tmp_path, uncommented))
    assert inv.fmt == "ansible"
    assert [h.name for h in inv.hosts] == ["par-dc01.corp.example.com", "par-dc02.corp.example.com", "dmz-web01"]
    dmz = inv.host("dmz-web01")
    assert (dmz.transport, dmz.auth, dmz.scheme, dmz.port, dmz.address) == ("winrm", "ntlm", "http", 5985, "192.0.2.10")
    assert inv.host("par-dc01.corp.example.com").password_env == "FLEETCHECK_PASSWORD"


def test_alias_bomb_is_refused_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck import yamlfile

    monkeypatch.setattr(yamlfile, "MAX_NODES", 10_000)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("hosts: {A: {vars: {bomb: *a8}}}")
    with pytest.raises(InventoryError, match="expands to more than"):
        load_inventory(write(tmp_path, "\n".join(lines) + "\n"))


def test_ini_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "[web]\nweb01 ansible_host=10.0.0.1 ansible_connection=psrp\n\n[db]\ndb01\n", "hosts.ini"))
    assert [h.name for h in inv.hosts] == ["web01"] and inv.host("web01").address == "10.0.0.1"
    assert inv.skipped == {"db01": "no ansible_connection (ssh with sh)"}
