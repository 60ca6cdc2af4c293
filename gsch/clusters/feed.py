"""Keep a ClusterSnapshot current from the log: replay cluster events, then follow them."""

from __future__ import annotations

import gc
import logging

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS
from gsch.metrics import SNAPSHOT_LAST_SEQ

log = logging.getLogger(__name__)


class SnapshotFeed:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.snapshot = ClusterSnapshot()
        self._follower = store.follow(ALL_CLUSTER_EVENTS, self._apply)

    def _apply(self, stored: StoredEvent) -> None:
        self.snapshot.apply(stored.event, stored.seq)
        SNAPSHOT_LAST_SEQ.set(stored.seq)

    async def start(self, catch_up_timeout: float = 120.0) -> ClusterSnapshot:
        """Start following and return once every cluster event that existed is folded."""
        newest = await self.store.last(ALL_CLUSTER_EVENTS)
        await self._follower.start()
        if newest is not None and not await self.snapshot.wait_for(newest.seq, catch_up_timeout):
            raise TimeoutError(f"cluster snapshot did not reach sequence {newest.seq}")
        # The replayed fleet lives as long as the process: out of the cycle collector's
        # generations, so its full collections do not walk a million nodes in the middle of
        # a plan (at 10,000 clusters they cost a plan hundreds of milliseconds). Garbage
        # already pending is collected first, so none of it is kept for good.
        gc.collect()
        gc.freeze()
        log.info(
            "cluster snapshot ready",
            extra={"clusters": len(self.snapshot.clusters), "seq": self.snapshot.last_seq},
        )
        return self.snapshot

    async def stop(self) -> None:
        await self._follower.stop()
