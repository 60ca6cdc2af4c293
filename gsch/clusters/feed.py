"""Keep a ClusterSnapshot current from the log: start from the newest good snapshot (or the
beginning), fold the cluster events after it, then follow them."""

from __future__ import annotations

import logging
import time

from gsch.clusters.restore import newest_snapshot
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS
from gsch.metrics import SNAPSHOT_LAST_SEQ, SNAPSHOT_LOADED_SEQ, STARTUP_DURATION, STARTUP_REPLAYED

log = logging.getLogger(__name__)


class SnapshotFeed:
    def __init__(self, store: EventStore, snapshots: SnapshotStore | None = None) -> None:
        self.store = store
        self.snapshots = snapshots
        self.snapshot = ClusterSnapshot()
        self.started_from = 0  # the snapshot's sequence (0: the log's beginning)
        self._follower = store.follow(ALL_CLUSTER_EVENTS, self._apply)

    def _apply(self, stored: StoredEvent) -> None:
        self.snapshot.apply(stored.event, stored.seq)
        SNAPSHOT_LAST_SEQ.set(stored.seq)

    async def start(self, catch_up_timeout: float = 120.0) -> ClusterSnapshot:
        """Start following and return once every cluster event that existed is folded."""
        started = time.monotonic()
        if self.snapshots is not None:
            restored = await newest_snapshot(self.snapshots)
            self.snapshot, self.started_from = restored.snapshot, restored.seq
        loaded = time.monotonic()
        newest = await self.store.last(ALL_CLUSTER_EVENTS)
        await self._follower.start(self.started_from)
        if newest is not None and not await self.snapshot.wait_for(newest.seq, catch_up_timeout):
            raise TimeoutError(f"cluster snapshot did not reach sequence {newest.seq}")
        done = time.monotonic()
        replayed = self._follower.delivered
        SNAPSHOT_LOADED_SEQ.set(self.started_from)
        SNAPSHOT_LAST_SEQ.set(self.snapshot.last_seq)
        STARTUP_REPLAYED.set(replayed)
        STARTUP_DURATION.labels(phase="snapshot").set(loaded - started)
        STARTUP_DURATION.labels(phase="replay").set(done - loaded)
        STARTUP_DURATION.labels(phase="total").set(done - started)
        log.info(
            "cluster snapshot ready",
            extra={
                "clusters": len(self.snapshot.clusters),
                "seq": self.snapshot.last_seq,
                "from_snapshot": self.started_from,
                "replayed": replayed,
                "seconds": round(done - started, 3),
            },
        )
        return self.snapshot

    async def stop(self) -> None:
        await self._follower.stop()
