"""Run inside an ansible-core virtualenv: an inventory's effective variables as Ansible computes them.

`ansible-inventory --list` shows templates unrendered and vault values encrypted; this asks
Ansible's own InventoryManager, VariableManager and Templar for the final values of the named
variables, so templated and vaulted settings are compared with what a playbook run would use.
Usage: python ansible_oracle.py SOURCE VAULT_PASSWORD_FILE|'' KEY,KEY,...  -> JSON on stdout.
"""

import json
import sys

from ansible.cli import CLI
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.manager import VariableManager


def plain(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def main() -> None:
    source, password_file, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    loader = DataLoader()
    if password_file:
        loader.set_vault_secrets(CLI.setup_vault_secrets(loader, vault_ids=[], vault_password_files=[password_file]))
    inventory = InventoryManager(loader=loader, sources=[source])
    manager = VariableManager(loader=loader, inventory=inventory)
    out = {}
    for host in inventory.get_hosts():
        variables = manager.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=variables)
        values = {}
        for key in keys:
            if key in variables:
                try:
                    values[key] = plain(templar.template(variables[key]))
                except Exception as exc:  # the comparison reports it
                    values[key] = {"__error__": f"{type(exc).__name__}: {exc}"}
        out[host.name] = values
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
