"""Transports by name: the registry the runner picks a host's transport from.

A transport is built (and its client library imported) only when a host needs it: pypsrp,
pywinrm and asyncssh each cost about 0.1 s to import. Plugins add theirs with
`register_transport`; tests and library users pass ready instances (e.g. `MockTransport`).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from fleetcheck.transports.base import ScriptOutput, Transport, stop_workers, worker_pool
from fleetcheck.transports.target import PsrpSettings, SshSettings, Target, WinrmSettings


@dataclass(frozen=True)
class TransportOptions:
    """What the built-in transports need from the run."""

    executor: concurrent.futures.Executor | None = None
    #: SSH host key policy when a host sets none: "default", "accept" or a known_hosts file.
    ssh_known_hosts: str | None = "default"


TransportFactory = Callable[["Transports", TransportOptions], Transport]


def _psrp(_: Transports, options: TransportOptions) -> Transport:
    from fleetcheck.transports.psrp import PsrpTransport

    return PsrpTransport(options.executor)


def _psrp_native(transports: Transports, _: TransportOptions) -> Transport:
    from fleetcheck.transports.psrp_client.transport import NativePsrpTransport

    # pypsrp only for the auth methods the native client does not speak (Kerberos, CredSSP...)
    return NativePsrpTransport(fallback=lambda: transports["psrp"])


def _winrm(_: Transports, options: TransportOptions) -> Transport:
    from fleetcheck.transports.winrm import WinrmTransport

    return WinrmTransport(options.executor)


def _ssh(_: Transports, options: TransportOptions) -> Transport:
    from fleetcheck.transports.ssh import SshTransport

    return SshTransport(known_hosts=options.ssh_known_hosts)


_REGISTRY: dict[str, TransportFactory] = {
    "psrp": _psrp,
    "psrp:native": _psrp_native,
    "winrm": _winrm,
    "ssh": _ssh,
}


def register_transport(name: str, factory: TransportFactory) -> None:
    """Make `name` available to hosts (a later registration of the same name wins)."""
    _REGISTRY[name] = factory


def transport_names() -> list[str]:
    return list(_REGISTRY)


def get_transport(name: str, options: TransportOptions | None = None) -> Transport:
    """One freshly built transport by name; KeyError for a name nobody registered."""
    return Transports(options or TransportOptions())[name]


class Transports(Mapping[str, Transport]):
    """The transports of one run, each built on first use; given instances win over the registry."""

    def __init__(
        self, options: TransportOptions, given: Mapping[str, Transport] | Iterable[Transport] = ()
    ) -> None:
        self.options = options
        self._built: dict[str, Transport] = (
            dict(given) if isinstance(given, Mapping) else {t.name: t for t in given}
        )
        self._given = frozenset(self._built)

    def __getitem__(self, name: str) -> Transport:
        kind = name.partition(":")[0]
        if name not in self._built and kind != name and kind in self._given:
            return self._built[kind]  # a given `psrp` instance serves every psrp client variant
        if name not in self._built:
            factory = _REGISTRY.get(name)
            if factory is None:
                raise KeyError(name)
            self._built[name] = factory(self, self.options)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*_REGISTRY, *self._built]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*_REGISTRY, *self._built]))


def transport_name(target: Target, psrp_client: str | None = None) -> str:
    """The registry name for a target: `psrp` hosts may ask for the native client."""
    settings = target.settings
    if isinstance(settings, PsrpSettings):
        client = psrp_client or settings.client
        return "psrp:native" if client == "native" else "psrp"
    return settings.kind


__all__ = [
    "PsrpSettings",
    "ScriptOutput",
    "SshSettings",
    "Target",
    "Transport",
    "TransportFactory",
    "TransportOptions",
    "Transports",
    "WinrmSettings",
    "get_transport",
    "register_transport",
    "stop_workers",
    "transport_name",
    "transport_names",
    "worker_pool",
]
