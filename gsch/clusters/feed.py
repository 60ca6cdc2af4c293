"""Keep a ClusterSnapshot current: start from the newest good stored snapshot (or the log's
beginning), fold the cluster events of the log after it, then follow them; and fold the
telemetry stream (latency and pod reports, one current value per node) from its start, which
is as long as the fleet is large, never as old as the installation."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from gsch.clusters.restore import newest_snapshot
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS, ALL_TELEMETRY
from gsch.metrics import SNAPSHOT_LAST_SEQ, SNAPSHOT_LOADED_SEQ, STARTUP_DURATION, STARTUP_REPLAYED
from gsch.model.events import LatencyReported, PodsReported

log = logging.getLogger(__name__)


class SnapshotFeed:
    def __init__(self, store: EventStore, snapshots: SnapshotStore | None = None) -> None:
        """Without `snapshots`, the cluster state is folded from the log's beginning: only
        right while nothing was compacted (tests, benchmarks on a fresh log)."""
        self.store = store
        self.snapshots = snapshots
        self.snapshot = ClusterSnapshot()
        self.started_from = 0  # the snapshot's sequence (0: the log's beginning)
        self._follower = store.follow(ALL_CLUSTER_EVENTS, self._apply)
        self._telemetry = store.follow(ALL_TELEMETRY, self._apply_telemetry)
        self._telemetry_advanced = asyncio.Event()

    @property
    def replayed(self) -> int:
        """Cluster events of the log folded since the start (after the stored snapshot)."""
        return self._follower.delivered

    def _apply(self, stored: StoredEvent) -> None:
        self.snapshot.apply(stored.event, stored.seq)
        SNAPSHOT_LAST_SEQ.set(stored.seq)

    def _apply_telemetry(self, stored: StoredEvent) -> None:
        if isinstance(stored.event, LatencyReported | PodsReported):
            self.snapshot.apply_telemetry(stored.event, stored.seq)
        self._telemetry_advanced.set()

    async def _telemetry_caught_up(self, timeout: float) -> None:
        newest = await self.store.last(ALL_TELEMETRY)
        if newest is None:
            return
        async with asyncio.timeout(timeout):
            while self._telemetry.last_seq < newest.seq:
                self._telemetry_advanced.clear()
                await self._telemetry_advanced.wait()

    async def start(self, catch_up_timeout: float = 120.0) -> ClusterSnapshot:
        """Start following and return once every cluster event and every current report that
        existed is folded."""
        started = time.monotonic()
        if self.snapshots is not None:
            restored = await newest_snapshot(self.snapshots)
            self.snapshot, self.started_from = restored.snapshot, restored.seq
        loaded = time.monotonic()
        newest = await self.store.last(ALL_CLUSTER_EVENTS)
        await self._telemetry.start()
        await self._follower.start(self.started_from)
        if newest is not None and not await self.snapshot.wait_for(newest.seq, catch_up_timeout):
            raise TimeoutError(f"cluster snapshot did not reach sequence {newest.seq}")
        try:
            await self._telemetry_caught_up(catch_up_timeout)
        except TimeoutError:
            raise TimeoutError("the telemetry stream was not folded in time") from None
        done = time.monotonic()
        replayed = self._follower.delivered
        SNAPSHOT_LOADED_SEQ.set(self.started_from)
        SNAPSHOT_LAST_SEQ.set(self.snapshot.last_seq)
        STARTUP_REPLAYED.set(replayed)
        STARTUP_DURATION.labels(phase="snapshot").set(loaded - started)
        STARTUP_DURATION.labels(phase="replay").set(done - loaded)
        STARTUP_DURATION.labels(phase="total").set(done - started)
        # The replayed fleet lives as long as the process: out of the cycle collector's
        # generations, so its full collections do not walk a million nodes in the middle of
        # a plan (at 10,000 clusters they cost a plan hundreds of milliseconds). Garbage
        # already pending is collected first, so none of it is kept for good.
        gc.collect()
        gc.freeze()
        log.info(
            "cluster snapshot ready",
            extra={
                "clusters": len(self.snapshot.clusters),
                "seq": self.snapshot.last_seq,
                "from_snapshot": self.started_from,
                "replayed": replayed,
                "reports": self._telemetry.delivered,
                "seconds": round(done - started, 3),
            },
        )
        return self.snapshot

    async def stop(self) -> None:
        await self._follower.stop()
        await self._telemetry.stop()
