"""Ansible inventory sources: INI, group_vars/host_vars, precedence, skips, vault, templates, hostile input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleetcheck.inventory import InventoryError, apply_limit, load_inventory
from fleetcheck.inventory.export import inventory_json
from fleetcheck.inventory.sources.base import expand_hostpattern
from fleetcheck.inventory.sources.ini import parse_value
from fleetcheck.inventory.vault import VaultError, vault_secrets

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def files(root: Path, **contents: str) -> Path:
    for name, text in contents.items():
        path = root / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_group_vars_beside_the_inventory_decide_the_connection(tmp_path: Path) -> None:
    files(tmp_path, **{"hosts.yml": "windows:\n  hosts:\n    w1:\n",
                       "group_vars__windows.yml": "ansible_connection: winrm\nansible_winrm_transport: ntlm\n"
                                                  "ansible_port: 5985\nansible_user: svc\n"})
    host = load_inventory(tmp_path / "hosts.yml").host("w1")
    assert (host.transport, host.auth, host.scheme, host.port, host.username) == ("winrm", "ntlm", "http", 5985, "svc")


def test_children_defined_elsewhere_keep_their_hosts_and_limits_intersect(tmp_path: Path) -> None:
    inv = load_inventory(CORPUS / "docs-yaml-prod-test" / "hosts.yml")
    assert sorted(inv.groups["prod"]) == ["bar.example.com", "foo.example.com", "one.example.com",
                                          "three.example.com", "two.example.com"]
    inv = load_inventory(CORPUS / "children-before-definition" / "hosts.ini")
    assert [h.name for h in apply_limit(inv.hosts, inv.groups, "prod:&dbservers")] == ["e1.example.com", "w1.example.com"]


def test_non_windows_hosts_are_skipped_with_reasons(tmp_path: Path) -> None:
    inv = load_inventory(CORPUS / "mixed-fleet" / "hosts.ini")
    assert [h.name for h in inv.hosts] == ["win-01.example.com", "win-02.example.com", "win-03.example.com"]
    assert inv.skipped["localhost"] == "local" and inv.skipped["app2"] == "docker"
    assert inv.skipped["sw1"] == "network_cli"
    assert inv.skipped["web-lnx-1.example.com"] == "no ansible_connection (ssh with sh)"
    assert [h.name for h in apply_limit(inv.hosts, inv.groups, "windows")] == [h.name for h in inv.hosts]


def test_precedence_depth_then_priority_then_name_and_files_over_inline(tmp_path: Path) -> None:
    inv = load_inventory(CORPUS / "group-priority" / "hosts.yml")
    assert inv.host("h1").port == 5001 and inv.host("h1").transport == "winrm"  # aaa priority 10 beats zzz
    assert inv.host("h2").username == "from-mmm"  # priority 5 sorts after 1, so mmm is applied last and wins
    inv = load_inventory(CORPUS / "depth-beats-name" / "hosts.ini")
    assert inv.host("h1").port == 5002 and inv.host("h2").username == "from-b"
    inv = load_inventory(CORPUS / "precedence-files-vs-inline" / "hosts.ini")
    assert (inv.host("p1").username, inv.host("p1").port, inv.host("p2").port) == ("from-group-vars-all", 5986, 7001)
    assert inv.provenance["p2"]["port"].startswith("ansible_port @ ") and "host_vars/p2.yml:1" in inv.provenance["p2"]["port"]


def test_ini_typing_as_ansible() -> None:
    assert parse_value("5985") == 5985 and parse_value("'1'") == "1" and parse_value("True") is True
    assert parse_value("FALSE") == "FALSE" and parse_value("[1,2]") == [1, 2] and parse_value("a b") == "a b"
    assert parse_value("None") is None and parse_value("1j") == "1j"


@pytest.mark.parametrize(("name", "text", "line", "words"), [
    ("hosts.ini", "[a:children]\nb\n[b:children]\na\n[b]\n", 4, "makes a cycle"),
    ("hosts.yml", "a:\n  children:\n    b:\n      children:\n        a:\n", 3, "makes a cycle"),
    ("hosts.ini", "[a]\nh1\n[a:children]\nmissing\n", 4, "never defined"),
    ("hosts.ini", "[a:vars]\nx=1\n", 1, "never defined"),
    ("hosts.ini", "[a:hostz]\n", 1, "unknown section type"),
    ("hosts.ini", "[a]\nh1 novalue\n", 2, "expected key=value"),
    ("hosts.ini", "[a]\nh1 x='unclosed\n", 2, "check the quotes"),
    ("hosts.ini", "[a]\nweb[0:99999999]\n", 2, "the limit is"),
    ("hosts.yml", "a:\n  host:\n    h1:\n", 2, "did you mean 'hosts'?"),
    ("hosts.yml", "a:\n  hosts:\n    h1: {ansible_connection: psrp, fleetcheck_pasword_env: X}\n", 3,
     "did you mean 'fleetcheck_password_env'?"),
])
def test_bad_inventories_name_file_and_line(tmp_path: Path, name: str, text: str, line: int, words: str) -> None:
    files(tmp_path, **{name: text})
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / name)
    assert info.value.line == line and words in str(info.value)
    assert str(tmp_path / name) in str(info.value)


def test_hostile_inventories_are_refused_quickly(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="100000000 hosts"):
        expand_hostpattern("h[1:100000000]")
    with pytest.raises(ValueError, match="the limit is"):
        expand_hostpattern("h[1:1000][1:1000]")
    deep = "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(200)) + "[g200]\nh1 ansible_connection=psrp\n"
    upward = "[g5000]\nh1\n" + "".join(f"[g{i}:children]\ng{i + 1}\n" for i in range(4999, -1, -1))
    files(tmp_path, **{"deep.ini": deep, "upward.ini": upward})
    for name in ("deep.ini", "upward.ini"):  # top-down and bottom-up chains; the second was quadratic
        with pytest.raises(InventoryError, match="nest more than"):
            load_inventory(tmp_path / name)
    assert time.perf_counter() - started < 2


def test_warnings_scale_with_kinds_not_hosts(tmp_path: Path) -> None:
    lines = ["[windows]"] + [f"w{i:03d} ansible_password=pw{i}" for i in range(400)]
    lines += ["[windows:vars]", "ansible_connection=winrm", "ansible_host={{ lookup('env', 'X') }}",
              "ansible_user={{ undefined_thing }}", "ansible_become=true"]
    files(tmp_path, **{"hosts.ini": "\n".join(lines) + "\n"})
    inv = load_inventory(tmp_path / "hosts.ini")
    assert len(inv.hosts) == 400 and len(inv.warnings) <= 5, inv.warnings
    text = "\n".join(inv.warnings)
    assert "a password is written in clear for 400 hosts" in text and text.count("hosts.ini") == 1
    assert "needs Ansible (lookup('env'))" in text and "400 hosts (w000, w001, w002 and 397 more)" in text
    assert "'undefined_thing' is undefined" in text
    assert all(h.address == h.name for h in inv.hosts)  # the template is left out, never used raw


def test_templated_values_render_over_host_vars() -> None:
    inv = load_inventory(CORPUS / "templated" / "hosts.yml")
    t1 = inv.host("t1")
    assert (t1.address, t1.username, t1.port) == ("t1.corp.example.com", "FLEET@CORP.EXAMPLE.COM", 5986)
    assert inv.host("t2").address == "192.0.2.42"


def test_vault_inline_and_files_decrypt_and_stay_secret() -> None:
    case = CORPUS / "vault-inline"
    secrets = vault_secrets([case / "vault-pass.txt"], environ={})
    inv = load_inventory(case / "hosts.yml", secrets=secrets)
    assert inv.host("vi1").password is not None and inv.host("vi1").password.get_secret_value() == "S3cret-Inline!"
    assert inv.host("vi2").username == "CORP\\vaulted-user"
    dumped = str(inventory_json(inv)) + repr(inv.hosts)
    assert "S3cret-Inline!" not in dumped
    case = CORPUS / "vault-id"
    inv = load_inventory(case / "hosts.ini", secrets=vault_secrets([f"prod@{case / 'vault-pass.txt'}"], environ={}))
    assert inv.host("vid1").password is not None and inv.host("vid1").password.get_secret_value() == "Id-Pass-12"
    env = {"ANSIBLE_VAULT_PASSWORD_FILE": str(CORPUS / "vault-file" / "vault-pass.txt")}
    inv = load_inventory(CORPUS / "vault-file" / "hosts.ini", secrets=vault_secrets(environ=env))
    assert inv.host("vf1").username == "vaulted-file-user"


def test_vault_without_or_with_a_wrong_password_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="--vault-password-file") as info:
        load_inventory(CORPUS / "vault-file" / "hosts.ini")
    assert "group_vars/windows.yml" in str(info.value)
    files(tmp_path, wrong="not-the-password\n")
    with pytest.raises(InventoryError, match="no vault password given opens it"):
        load_inventory(CORPUS / "vault-file" / "hosts.ini", secrets=vault_secrets([tmp_path / "wrong"], environ={}))
    with pytest.raises(VaultError, match="empty"):
        vault_secrets([files(tmp_path, empty="\n") / "empty"], environ={})


def test_directory_source_skips_what_ansible_skips() -> None:
    inv = load_inventory(CORPUS / "directory-source" / "inventory")
    assert sorted(h.name for h in inv.hosts) == ["d1", "d2", "d3", "d4"]
    assert inv.host("d2").username == "sqladmin" and "ignored" not in inv.groups


def test_dynamic_source_without_ansible_names_the_missing_piece(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETCHECK_ANSIBLE_INVENTORY", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    files(tmp_path, **{"azure.yml": "plugin: azure.azcollection.azure_rm\n"})
    with pytest.raises(InventoryError, match=r"plugin: azure\.azcollection\.azure_rm") as info:
        load_inventory(tmp_path / "azure.yml")
    assert "pip install ansible-core" in str(info.value)


def test_native_misspelled_key_suggests_the_right_one(tmp_path: Path) -> None:
    files(tmp_path, **{"inv.yml": "hosts:\n  A: {address: 127.0.0.1, pasword_env: FC_PW}\n"})
    with pytest.raises(InventoryError, match="did you mean 'password_env'") as info:
        load_inventory(tmp_path / "inv.yml")
    assert info.value.line == 2 and "allowed keys" not in str(info.value)


def test_readme_ini_example_resolves_as_described(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("```ini\n") + 7 :]
    files(tmp_path, **{"hosts.ini": block[: block.index("```")]})
    inv = load_inventory(tmp_path / "hosts.ini")
    assert len(inv.hosts) == 21 and inv.skipped == {"localhost": "local"}
    web = inv.host("web07.corp.example.com")
    assert (web.transport, web.auth, web.scheme, web.port, web.password_env) == ("winrm", "ntlm", "http", 5985, "FLEETCHECK_PASSWORD")
    sql = inv.host("sql-01.corp.example.com")
    assert (sql.scheme, sql.port, sql.username) == ("https", 5986, "CORP\\svc-fleetcheck")


@pytest.mark.parametrize("template", [
    "{{ 'x' * 10**10 }}", "{{ 2 ** 100000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ ''.__class__.__mro__ }}", "{{ ansible_user }}",
])
def test_hostile_templates_are_left_out_quickly(tmp_path: Path, template: str) -> None:
    files(tmp_path, **{"hosts.yml": f"w:\n  hosts:\n    h1:\n      ansible_connection: psrp\n"
                                    f"      ansible_user: \"{{{{ ansible_user }}}}\"\n      ansible_host: \"{template}\"\n"})
    started = time.perf_counter()
    inv = load_inventory(tmp_path / "hosts.yml")
    assert inv.host("h1").address == "h1" and inv.host("h1").username is None
    assert time.perf_counter() - started < 2 and any("templated 'ansible_host' left out" in w for w in inv.warnings)


def test_vault_password_from_an_executable_script(tmp_path: Path) -> None:
    script = files(tmp_path, **{"pw.sh": "#!/bin/sh\necho fleetcheck-test-vault-pw\n"}) / "pw.sh"
    script.chmod(0o700)
    inv = load_inventory(CORPUS / "vault-inline" / "hosts.yml", secrets=vault_secrets([script], environ={}))
    assert inv.host("vi2").username == "CORP\\vaulted-user"


def test_json_export_is_shaped_like_ansible_inventory_list() -> None:
    inv = load_inventory(CORPUS / "all-and-ungrouped" / "hosts.yml")
    data = inventory_json(inv)
    assert data["all"] == {"children": ["ungrouped", "g"]} and set(data["ungrouped"]["hosts"]) == {"u1", "u3"}
    assert data["g"] == {"hosts": ["u2"]}
    assert data["_meta"]["hostvars"]["u1"]["fleetcheck"]["transport"] == "psrp"
    assert data["_meta"]["hostvars"]["u1"]["provenance"]["transport"].startswith("ansible_connection @ ")


def test_values_from_a_vaulted_file_are_secrets_not_clear_passwords() -> None:
    case = CORPUS / "vault-file"
    inv = load_inventory(case / "hosts.ini", secrets=vault_secrets([case / "vault-pass.txt"], environ={}))
    assert not any("in clear" in w for w in inv.warnings)
    assert "V4ult-File-Pass" not in str(inventory_json(inv))


def test_a_name_used_for_a_group_and_a_host_is_warned_once(tmp_path: Path) -> None:
    files(tmp_path, **{"hosts.ini": "[web]\nweb ansible_connection=psrp\ndb ansible_connection=psrp\n[db]\n"})
    inv = load_inventory(tmp_path / "hosts.ini")
    assert inv.warnings == ["names used for both a group and a host (patterns match both): db, web"]


def test_ask_vault_pass_prompts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck import api

    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "fleetcheck-test-vault-pw"

    inv = api.load_inventory(CORPUS / "vault-inline" / "hosts.yml", vault_prompt=prompt)
    assert asked == ["Vault password: "] and inv.host("vi2").username == "CORP\\vaulted-user"


def test_a_templated_connection_decides_the_skip_after_rendering(tmp_path: Path) -> None:
    files(tmp_path, **{"hosts.yml": "all:\n  vars:\n    kind: psrp\n    ansible_connection: '{{ kind }}'\n"
                                    "  hosts:\n    w1:\n    l1: {kind: local}\n"})
    inv = load_inventory(tmp_path / "hosts.yml")
    assert [h.name for h in inv.hosts] == ["w1"] and inv.host("w1").transport == "psrp"
    assert inv.skipped == {"l1": "local"}


def test_a_symlink_loop_in_group_vars_is_refused(tmp_path: Path) -> None:
    files(tmp_path, **{"hosts.ini": "[w]\nh1 ansible_connection=psrp\n", "group_vars__w__a.yml": "ansible_user: u\n"})
    (tmp_path / "group_vars" / "w" / "loop").symlink_to(tmp_path / "group_vars" / "w")
    with pytest.raises(InventoryError, match="nest more than 16 levels"):
        load_inventory(tmp_path / "hosts.ini")


def test_a_limit_that_selects_only_skipped_hosts_says_so() -> None:
    from fleetcheck.inventory import LimitError

    inv = load_inventory(CORPUS / "mixed-fleet" / "hosts.ini")
    with pytest.raises(LimitError, match=r"matches only hosts that are skipped .*: app1, app2"):
        apply_limit(inv.hosts, inv.groups, "containers")
    assert [h.name for h in apply_limit(inv.hosts, inv.groups, "containers:windows")] == [h.name for h in inv.hosts]


def test_a_symlink_loop_in_an_inventory_directory_is_refused(tmp_path: Path) -> None:
    files(tmp_path, **{"inv__a.ini": "[w]\nh1 ansible_connection=psrp\n"})
    (tmp_path / "inv" / "loop").symlink_to(tmp_path / "inv")
    with pytest.raises(InventoryError, match="nest more than 16 levels"):
        load_inventory(tmp_path / "inv")


def test_an_ini_file_named_yml_is_read_as_ini_like_ansible(tmp_path: Path) -> None:
    files(tmp_path, **{"hosts.yml": "# INI in a .yml file\n[web]\nweb01 ansible_connection=psrp\n[db]\ndb01\n"})
    inv = load_inventory(tmp_path / "hosts.yml")
    assert [h.name for h in inv.hosts] == ["web01"] and "db01" in inv.skipped
    files(tmp_path, **{"bad.yml": "all:\n  hosts: [unclosed\n"})
    with pytest.raises(InventoryError, match="not valid YAML"):
        load_inventory(tmp_path / "bad.yml")


def test_native_inline_passwords_warn_once_per_file(tmp_path: Path) -> None:
    hosts = "".join(f"  H{i:03d}: {{address: 127.0.0.1, username: u, password: pw, auth: ntlm}}\n" for i in range(400))
    files(tmp_path, **{"inv.yml": "hosts:\n" + hosts})
    inv = load_inventory(tmp_path / "inv.yml")
    assert inv.warnings == [f"{tmp_path / 'inv.yml'}: password written in the inventory for 400 hosts "
                            "(H000, H001, H002 and 397 more); prefer password_env or --ask-pass"]
