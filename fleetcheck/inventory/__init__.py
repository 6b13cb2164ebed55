"""Inventory plugins: the native format and Ansible YAML, both resolved to `model.Host`."""
