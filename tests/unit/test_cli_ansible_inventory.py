"""The CLI with Ansible inventories: -i, --json, --list-hosts, --show-skipped, vault options, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fleetcheck.cli import app

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_inventory_json_is_data_and_redacts_vault_secrets() -> None:
    case = CORPUS / "vault-inline"
    code, out, _ = invoke("inventory", "-i", str(case / "hosts.yml"), "--vault-password-file", str(case / "vault-pass.txt"),
                          "--json")
    assert code == 0
    data = json.loads(out)
    assert data["windows"]["hosts"] == ["vi1", "vi2"] and data["all"]["children"] == ["ungrouped", "windows"]
    assert data["_meta"]["hostvars"]["vi2"]["fleetcheck"]["username"] == "********"  # decrypted: a secret
    assert data["_meta"]["hostvars"]["vi1"]["fleetcheck"]["password"] == "********"
    assert "S3cret-Inline!" not in out and "vaulted-user" not in out
    code, out, _ = invoke("inventory", "-i", str(case / "hosts.yml"), "--vault-password-file", str(case / "vault-pass.txt"))
    assert code == 0 and "vaulted-user" not in out and "S3cret-Inline!" not in out


def test_vault_password_file_from_the_environment() -> None:
    case = CORPUS / "vault-file"
    code, out, _ = invoke("inventory", str(case / "hosts.ini"), "--list-hosts",
                          env={"ANSIBLE_VAULT_PASSWORD_FILE": str(case / "vault-pass.txt")})
    assert code == 0 and out.split() == ["hosts", "(2):", "vf1", "vf2"]
    code, _, err = invoke("inventory", str(case / "hosts.ini"), env={"ANSIBLE_VAULT_PASSWORD_FILE": ""})
    assert code == 2 and "--vault-password-file" in err and "group_vars/windows.yml, line 1" in err


def test_inventory_lists_skipped_hosts_and_provenance() -> None:
    code, out, _ = invoke("inventory", "-i", str(CORPUS / "mixed-fleet" / "hosts.ini"))
    assert code == 0
    assert "sw1                    network_cli" in out and "app2                   docker" in out
    assert "win-01.example.com: scheme <- ansible_psrp_protocol @ " in out and "hosts.ini:19" in out


def test_run_prints_one_skipped_line_and_lists_hosts_like_ansible() -> None:
    code, out, err = invoke("run", "-i", str(CORPUS / "mixed-fleet" / "hosts.ini"), "--list-hosts", "--limit", "windows")
    assert code == 0 and out.split() == ["hosts", "(3):", "win-01.example.com", "win-02.example.com", "win-03.example.com"]
    assert len(err.splitlines()) == 1
    assert "7 hosts skipped: not Windows remoting (no ansible_connection (ssh with sh) 3, docker 2, local 1, network_cli 1)" in err
    code, out, err = invoke("run", "-i", str(CORPUS / "mixed-fleet" / "hosts.ini"), "--list-hosts", "--show-skipped")
    assert code == 0 and "sw1" in err and "--show-skipped to list" not in err


def test_run_with_only_skipped_hosts_is_a_usage_error() -> None:
    code, _, err = invoke("run", "-i", str(CORPUS / "docs-ini-basic" / "hosts.ini"))
    assert code == 2 and "no host to check: all 6 hosts" in err


def test_several_sources_make_one_inventory() -> None:
    code, out, _ = invoke("inventory", "-i", str(CORPUS / "win-winrm-ntlm" / "hosts.ini"),
                          "-i", str(CORPUS / "win-psrp-yaml" / "hosts.yml"), "--list-hosts")
    assert code == 0 and len(out.split()) == 2 + 6


def test_bad_ini_exits_2_with_file_line_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nw1 ansible_connection=psrp\n[prod:children]\nweb\nmissing\n")
    code, _, err = invoke("inventory", str(path))
    assert code == 2 and f"{path}, line 5: 'missing': [prod:children] names group 'missing', which is never defined" in err
    assert "add a [missing] section" in err
