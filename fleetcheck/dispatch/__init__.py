"""Checking hosts from elsewhere: site workers behind a broker, and shards without one.

- `base.Dispatcher`: the small interface a distributed engine implements.
- `sites.SiteTransport`: the coordinator's side, a "remote" transport for the runner.
- `worker.run_batch`: the worker's side, the same async runner on one batch.
- `celery_sites`: the Dispatcher and worker on Celery with Redis (`fleetcheck[sites]`).
- `local.LocalDispatcher`: batches in this process (no broker).
- `shard` and `merge`: `run --shard K/N` and `fleetcheck merge`.
"""

from __future__ import annotations

from fleetcheck.dispatch.base import Dispatcher
from fleetcheck.dispatch.sites import DEFAULT_BATCH_SIZE, DEFAULT_SITE_WAIT, LOCAL_SITE, SiteTransport

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_SITE_WAIT", "LOCAL_SITE", "Dispatcher", "SiteTransport"]
