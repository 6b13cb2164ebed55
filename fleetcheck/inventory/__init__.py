"""Inventories: the native format and Ansible sources (sources/: INI, YAML, directories, dynamic), resolved to `model.Host`."""

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.limit import LimitError, apply_limit
from fleetcheck.inventory.loader import Inventory, find_inventory, load_credentials, load_inventory
from fleetcheck.inventory.model import Host

__all__ = [
    "Host",
    "Inventory",
    "InventoryError",
    "LimitError",
    "apply_limit",
    "find_inventory",
    "load_credentials",
    "load_inventory",
]
