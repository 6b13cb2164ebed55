"""Ansible's variable precedence for one host, with the origin of every value kept.

Lowest to highest (Ansible's default VARIABLE_PRECEDENCE, then host vars):
`all` vars from the inventory, every other group's inventory vars, group_vars/all files, every
other group's group_vars files, the host's inventory vars, host_vars files. Groups are ordered
by depth below `all` (parents before children), then `ansible_group_priority`, then name.
"""

from __future__ import annotations

from fleetcheck.inventory.errors import InventoryError
from fleetcheck.inventory.sources.base import MAX_GROUP_DEPTH, RawInventory, Var
from fleetcheck.inventory.sources.vars_files import VarsFiles


class Precedence:
    """Group depths, ancestries and members computed once per inventory (fast for 5,000 hosts)."""

    def __init__(self, inv: RawInventory, files: VarsFiles) -> None:
        self.inv = inv
        self.files = files
        self.depth: dict[str, int] = {}
        for name in inv.groups:
            self._depth(name)
        self._ancestry: dict[str, frozenset[str]] = {}
        self._sorted: dict[frozenset[str], list[str]] = {}

    def _depth(self, name: str) -> int:
        """Longest path from `all`, iteratively (a deep chain must not hit Python's recursion limit)."""
        if name in self.depth:
            return self.depth[name]
        stack = [name]
        while stack:
            top = stack[-1]
            parents = [p for p in self.inv.groups[top].parents if p not in self.depth]
            if parents:
                stack.extend(parents)
                continue
            stack.pop()
            known = [self.depth[p] + 1 for p in self.inv.groups[top].parents]
            self.depth[top] = max(known, default=0)
            if self.depth[top] > MAX_GROUP_DEPTH:
                where = self.inv.groups[top].origin
                raise InventoryError(where.path if where else None, where.line if where else None, top,
                                     f"groups nest more than {MAX_GROUP_DEPTH} levels deep")
        return self.depth[name]

    def ancestry(self, group: str) -> frozenset[str]:
        """The group and every group above it."""
        if group not in self._ancestry:
            out = {group}
            todo = list(self.inv.groups[group].parents)
            while todo:
                parent = todo.pop()
                if parent not in out:
                    out.add(parent)
                    todo.extend(self.inv.groups[parent].parents)
            self._ancestry[group] = frozenset(out)
        return self._ancestry[group]

    def host_groups(self, host: str) -> list[str]:
        """Every group of the host except `all`, in Ansible's merge order."""
        direct = self.inv.hosts[host].groups
        members: frozenset[str] = frozenset().union(*(self.ancestry(g) for g in direct)) - {"all"}
        if members not in self._sorted:
            groups = self.inv.groups
            self._sorted[members] = sorted(members, key=lambda g: (self.depth[g], groups[g].priority, g))
        return self._sorted[members]

    def host_vars(self, host: str) -> dict[str, Var]:
        """The host's variables after precedence, each with the origin that won."""
        groups = self.host_groups(host)
        out = dict(self.inv.groups["all"].vars)
        for group in groups:
            out.update(self.inv.groups[group].vars)
        out.update(self.files.group("all"))
        for group in groups:
            out.update(self.files.group(group))
        out.update(self.inv.hosts[host].vars)
        out.update(self.files.host(host))
        return out

    def members(self) -> dict[str, list[str]]:
        """Group -> hosts (through children too), in inventory order, as Ansible's `groups` var."""
        out: dict[str, list[str]] = {name: [] for name in self.inv.groups}
        for host in self.inv.hosts:
            for group in self.host_groups(host):
                out[group].append(host)
            out["all"].append(host)
        return out
