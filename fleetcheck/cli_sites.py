"""`fleetcheck worker` and `fleetcheck merge`: the commands of multi-site and sharded runs."""

from __future__ import annotations

from typing import Annotated

import typer

from fleetcheck.cli_lookup import user_errors

Broker = Annotated[
    str | None,
    typer.Option("--broker", metavar="URL", envvar="FLEETCHECK_BROKER",
                 help="Redis URL of the site queues (redis://HOST:6379/0); hosts of other sites go to their workers."),
]
Shard = Annotated[
    str | None, typer.Option("--shard", metavar="K/N", help="Check only the K-th of N shards of the hosts (hash of the name).")
]
SiteWait = Annotated[
    float, typer.Option("--site-wait", metavar="SECONDS", min=1, max=3600,
                        help="A site silent this long ends its waiting hosts as unreachable.")
]


def worker_cmd(
    site: Annotated[str, typer.Option("--site", metavar="NAME", help="The site whose queue this worker serves.")],
    broker: Annotated[str, typer.Option("--broker", metavar="URL", envvar="FLEETCHECK_BROKER", help="Redis URL.")],
    forks: Annotated[int, typer.Option("--forks", metavar="N", min=1, max=1000, help="Hosts checked at the same time.")] = 50,
    redeliver_after: Annotated[
        float, typer.Option("--redeliver-after", metavar="SECONDS", min=1,
                            help="A batch a lost worker left unacknowledged goes to another worker after this.")
    ] = 600.0,
    loglevel: Annotated[str, typer.Option("--loglevel", metavar="LEVEL", help="Celery's log level.")] = "WARNING",
) -> None:
    """Check the hosts of one site for any coordinator: a Celery worker on the site's queue.

    Passwords come from this worker's own environment (the inventory's password_env names
    the variable); nothing secret crosses the broker. The worker only connects out to Redis.

    \b
    Example:
      FLEETCHECK_LAB_PASSWORD=... fleetcheck worker --site dmz --broker redis://broker:6379/0 --forks 20
    """
    from fleetcheck.errors import UserError

    with user_errors():
        if not _valid_site(site):
            raise UserError(f"--site '{site}': letters, digits, '.', '_' and '-' only")
        try:
            from fleetcheck.dispatch.celery_sites import run_worker
        except ImportError as exc:
            raise UserError(f"fleetcheck worker needs the sites extra: pip install 'fleetcheck[sites]' ({exc})") from None
    run_worker(site, broker, forks=forks, redeliver_after=redeliver_after, loglevel=loglevel)


def _valid_site(site: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", site) is not None
