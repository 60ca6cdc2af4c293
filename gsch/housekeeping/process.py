"""The housekeeper as a role of `gsch serve`: its own identity on the bus, the read model
retention reads, and the task that snapshots, compacts and expires.

Housekeeping is the one work that purges the log, so it runs under the `housekeeper`
identity (gsch/bus/roles.py), never as the API that faces users. Beside an API in one
process it reads the API's read model; alone (`gsch serve --roles housekeeper`) it projects
the log into the same configured file itself: read models are shared by any number of
projecting processes (gsch/projections/lock.py), so a housekeeper and an API on one data
directory do not get in each other's way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.housekeeping.housekeeper import Housekeeper
from gsch.housekeeping.retention import Retention
from gsch.runtime.config import Config


async def start_housekeeper(
    config: Config,
    store: EventStore,
    snapshot: ClusterSnapshot,
    own_read_model: bool,
    stack: AsyncExitStack,
    tasks: list[asyncio.Task[None]],
    stop: asyncio.Event,
    derived: list[Callable[[], int]],
) -> Housekeeper:
    """Start housekeeping on `store` (the housekeeper's connection) for the cluster state
    `snapshot` follows; with `own_read_model`, project the log for retention first."""
    snapshots = SnapshotStore(
        store.nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout
    )
    if own_read_model:
        from gsch.projections.projector import start_projecting

        await start_projecting(store, config.database_path, snapshots, stack, tasks, stop, derived)
    retention = Retention(config.retention, store, config.database_path)
    housekeeper = Housekeeper(
        store, snapshots, snapshot, config.snapshots, retention, config.retention.interval
    )
    tasks.append(asyncio.create_task(housekeeper.run(stop)))
    return housekeeper
