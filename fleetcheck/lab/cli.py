"""`fleetcheck lab`: serve a simulated Windows fleet on loopback, list the scenario library.

Mounted by the main CLI as `app.add_typer(lab_app, name="lab")`; also `python -m fleetcheck.lab`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from fleetcheck.lab.fleet import (
    DEFAULT_PASSWORD,
    FAULTS_HELP,
    PASSWORD_ENV,
    FleetConfigError,
    LabFleet,
    available_scenarios,
)

lab_app = typer.Typer(
    name="lab",
    help="A simulated Windows fleet on loopback (WinRM/PSRP, WinRS, SSH) for tests, demos and benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts hold literal [brackets] (the fault grammar)
)

_SERVE_HELP = f"""Start N simulated Windows hosts on loopback, write an inventory for them, serve until Ctrl-C/SIGTERM.

Each host gets its own address (127.0.1.1, 127.0.1.2, ...) on ports 5985/5986/22, or, where extra
loopback addresses or low ports are unavailable, 127.0.0.1 with its own ports. The hosts are
simulated: the password is the lab's, taken from ${PASSWORD_ENV} or the fixed default
{DEFAULT_PASSWORD!r}. It is never written to the inventory.

\b
{FAULTS_HELP}"""


@lab_app.command("serve", help=_SERVE_HELP)
def serve(
    inventory_out: Annotated[
        Path, typer.Option("--inventory-out", help="Where to write the fleetcheck inventory.")
    ] = Path("lab-run/lab.yml"),
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=20000, help="Number of hosts.")] = 10,
    mix: Annotated[
        str | None,
        typer.Option(
            "--mix", help="Scenario weights, e.g. healthy-2019=80,wsb-missing=5 (see `lab scenarios`)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for the scenario mix and probabilistic faults.")
    ] = 0,
    latency_ms: Annotated[
        float,
        typer.Option(
            "--latency-ms", min=0, help="Added latency per WSMan request (and per SSH command), ms."
        ),
    ] = 0.0,
    faults: Annotated[str | None, typer.Option("--faults", help="Fault rules (grammar above).")] = None,
    https: Annotated[
        bool, typer.Option("--https", help="Also serve WinRM over HTTPS (5986) with a lab CA.")
    ] = False,
    ssh: Annotated[bool, typer.Option("--ssh", help="Also serve SSH (22).")] = False,
    transport: Annotated[
        str, typer.Option("--transport", help="Transport written into the inventory: psrp, winrm or ssh.")
    ] = "psrp",
    addressing: Annotated[str, typer.Option("--addressing", help="auto, loopback-ips or ports.")] = "auto",
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Server processes (default: 1 up to 1000 hosts, more above)."),
    ] = None,
    counters_out: Annotated[
        Path | None,
        typer.Option("--counters-out", help="Write fleet counters (JSON) here on SIGUSR1 and at exit."),
    ] = None,
) -> None:
    if transport not in ("psrp", "winrm", "ssh"):
        _fail(f"--transport must be psrp, winrm or ssh, not {transport!r}")
    if addressing not in ("auto", "loopback-ips", "ports"):
        _fail(f"--addressing must be auto, loopback-ips or ports, not {addressing!r}")
    if transport == "ssh" and not ssh:
        ssh = True
    try:
        fleet = LabFleet(
            hosts,
            mix=mix,
            seed=seed,
            latency_ms=latency_ms,
            faults=faults,
            https=https,
            ssh=ssh,
            addressing=addressing,  # type: ignore[arg-type]
            workers=workers,
        )
    except FleetConfigError as exc:
        _fail(str(exc))
    code = asyncio.run(_serve(fleet, inventory_out, transport, counters_out))  # type: ignore[arg-type]
    raise typer.Exit(code)


async def _serve(
    fleet: LabFleet,
    inventory_out: Path,
    transport: Literal["psrp", "winrm", "ssh"],
    counters_out: Path | None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    ready = False

    def dump_counters() -> None:
        if counters_out is not None and ready:
            tmp = counters_out.with_suffix(counters_out.suffix + ".tmp")
            data = fleet.counters_dict() | {"hosts": len(fleet.hosts), "pids": fleet.pids}
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(counters_out)

    loop.add_signal_handler(signal.SIGUSR1, dump_counters)  # early: SIGUSR1 must never kill us
    try:
        await fleet.start()
    except Exception as exc:  # bind errors, bad scenarios, a worker that died: one line, no traceback
        await fleet.stop()
        print(f"fleetcheck lab: could not start the fleet: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        path = fleet.write_inventory(inventory_out, transport=transport)
        ready = True
        extra = []
        if fleet.https:
            extra.append("https")
        if fleet.ssh:
            extra.append("ssh")
        endpoints = f" (+{', '.join(extra)})" if extra else ""
        print(
            f"lab ready: {len(fleet.hosts)} hosts{endpoints}, addressing {fleet.addressing}, "
            f"inventory {path}, password in ${PASSWORD_ENV}",
            flush=True,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if dead := fleet.dead_workers():
                print(f"fleetcheck lab: worker process died: {', '.join(dead)}; stopping", file=sys.stderr)
                return 1
    finally:
        with contextlib.suppress(Exception):
            dump_counters()
        await fleet.stop()
    return 0


@lab_app.command("scenarios")
def scenarios() -> None:
    """List the scenario library (names usable in --mix)."""
    for name in available_scenarios():
        typer.echo(name)


def _fail(message: str) -> None:
    typer.echo(f"fleetcheck lab: {message}", err=True)
    raise typer.Exit(2)


def main() -> None:
    lab_app(prog_name="fleetcheck lab")
