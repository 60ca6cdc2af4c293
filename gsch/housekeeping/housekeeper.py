"""The housekeeper: snapshots of the cluster state it follows, compaction of the log behind
them, retention of finished requests, and the stream's size as metrics. It runs as the
`housekeeper` role (`gsch/housekeeping/process.py` starts it under its own identity).

Several processes may each run one: every step is idempotent (a snapshot of the same
sequence is not written twice, purges remove nothing the second time, an expiry recorded
twice is applied once), so they need no leader; they only repeat some work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import nats.errors

from gsch.aio import reraise_swallowed_cancel
from gsch.clusters.restore import load_slot
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.snapshot_codec import SnapshotCorrupt, SnapshotHeader, encode
from gsch.eventstore.compaction import Compacted, CompactionError, compact_cluster_events
from gsch.eventstore.snapshots import MarkUnreadable, SnapshotStore, SnapshotStoreError
from gsch.eventstore.store import EventStore
from gsch.housekeeping.retention import Retention
from gsch.metrics import (
    COMPACTION_PURGED,
    COMPACTION_RUNS,
    COMPACTION_WATERMARK,
    SNAPSHOT_BYTES,
    SNAPSHOT_NEWEST_SEQ,
    SNAPSHOT_NEWEST_TIME,
    SNAPSHOT_WRITES,
    STREAM_BYTES,
    STREAM_MESSAGES,
)
from gsch.runtime.config import SnapshotsConfig

log = logging.getLogger(__name__)

_TICK = 5.0  # how often the stream gauges refresh and due work is looked for


@dataclass(frozen=True)
class Written:
    header: SnapshotHeader
    slot: str
    size: int


async def write_snapshot(snapshots: SnapshotStore, snapshot: ClusterSnapshot) -> Written | None:
    """Store the snapshot as it is now; None when the newest stored one has this sequence."""
    held = await snapshots.list()
    if held and held[0].seq >= snapshot.last_seq:
        return None
    # Encoded in one go on the event loop: the feed cannot fold an event half way through.
    blob, header = encode(snapshot, time.time())
    try:
        slot = await snapshots.write(blob, header.seq, header.created_at)
    except SnapshotStoreError:
        SNAPSHOT_WRITES.labels(result="error").inc()
        raise
    SNAPSHOT_WRITES.labels(result="ok").inc()
    SNAPSHOT_BYTES.set(len(blob))
    SNAPSHOT_NEWEST_SEQ.set(header.seq)
    SNAPSHOT_NEWEST_TIME.set(header.created_at)
    log.info(
        "snapshot written",
        extra={"slot": slot, "seq": header.seq, "bytes": len(blob), "nodes": header.nodes,
               "reservations": header.reservations},
    )  # fmt: skip
    return Written(header, slot, len(blob))


async def compact(store: EventStore, snapshots: SnapshotStore) -> Compacted | None:
    """Purge cluster events behind the second newest good snapshot (the newest may be the
    one that turns out bad; the one before it must still be complete with the log)."""
    watermark = await snapshots.watermark()
    good: list[int] = []
    for stored in await snapshots.list():
        if stored.seq < watermark or len(good) == 2:
            break
        try:
            await load_slot(snapshots, stored)
        except (SnapshotCorrupt, SnapshotStoreError) as exc:
            log.error(
                "snapshot failed its check; not compacting behind it",
                extra={"slot": stored.slot, "seq": stored.seq, "error": str(exc)},
            )
            continue
        good.append(stored.seq)
    if len(good) < 2 or good[1] <= watermark:
        COMPACTION_RUNS.labels(result="skipped").inc()
        return None
    cut = good[1]
    after = await previous_cut(snapshots, cut, watermark)
    # The watermark first: a process starting while the purge runs must not replay from an
    # older snapshot (or the beginning) into the gap.
    COMPACTION_WATERMARK.set(await snapshots.raise_watermark(cut))
    done = await compact_cluster_events(store, cut, after)
    # Only now: a pass killed before this line is read again from the same `after`.
    await snapshots.record_purged(cut)
    COMPACTION_PURGED.labels(kind="cluster").inc(done.purged)
    COMPACTION_RUNS.labels(result="ok" if after else "full").inc()
    log.info("log compacted", extra={"after": after, "through": cut, "subjects": done.subjects,
                                     "purged": done.purged})  # fmt: skip
    return done


async def previous_cut(snapshots: SnapshotStore, cut: int, watermark: int) -> int:
    """Where the last finished pass stopped, so this one reads only what came after it; 0
    (the whole log, slower but the same result) when nothing usable is recorded."""
    try:
        after = await snapshots.purged_through()
    except MarkUnreadable as exc:
        log.error("compaction's previous cut unreadable; this pass reads the whole log",
                  extra={"error": str(exc), "through": cut})  # fmt: skip
        return 0
    if after is None:
        if watermark:  # compacted before, by a version that kept no record, or it was lost
            log.warning("compaction's previous cut not recorded; this pass reads the whole"
                        " log", extra={"watermark": watermark, "through": cut})  # fmt: skip
        return 0
    if after > cut:
        if after <= await snapshots.watermark():
            return after  # another housekeeper finished a later cut: nothing left to read
        log.error("compaction's previous cut is ahead of this one; this pass reads the whole"
                  " log", extra={"recorded": after, "through": cut})  # fmt: skip
        return 0
    return after


class Housekeeper:
    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore,
        snapshot: ClusterSnapshot,
        config: SnapshotsConfig,
        retention: Retention | None,
        retention_interval: float,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.snapshot = snapshot
        self.config = config
        self.retention = retention
        self.retention_interval = retention_interval
        self._suspect_chunks: set[str] = set()
        # Rounds come at least as often as the shortest interval asks for.
        self._tick = min(_TICK, *(i for i in (config.interval, retention_interval) if i > 0))

    async def run(self, stop: asyncio.Event) -> None:
        next_snapshot = time.monotonic() + self.config.interval
        next_retention = time.monotonic() + min(self.retention_interval, 60.0)
        while not stop.is_set():
            now = time.monotonic()
            try:
                await self.refresh_gauges()
                if self.config.interval > 0 and now >= next_snapshot:
                    next_snapshot = now + self.config.interval
                    await self.snapshot_and_compact()
                if self.retention is not None and now >= next_retention:
                    next_retention = now + self.retention_interval
                    await self.retention.run_once()
            except (
                TimeoutError, nats.errors.Error, SnapshotStoreError, CompactionError,
            ) as exc:  # fmt: skip
                # The next round tries again; nothing is half done that it cannot finish.
                COMPACTION_RUNS.labels(result="error").inc()
                log.warning("housekeeping round failed", extra={"error": repr(exc)})
            reraise_swallowed_cancel()
            try:
                async with asyncio.timeout(self._tick):
                    await stop.wait()
            except TimeoutError:
                pass

    async def snapshot_and_compact(self) -> tuple[Written | None, Compacted | None]:
        written = await write_snapshot(self.snapshots, self.snapshot)
        compacted = await compact(self.store, self.snapshots) if self.config.compact else None
        await self._collect_orphan_chunks()
        return written, compacted

    async def _collect_orphan_chunks(self) -> None:
        """Chunks of a snapshot whose writer was killed half way: removed once they have been
        orphans for a whole round (a writer busy right now has no metadata yet either)."""
        orphans = set(await self.snapshots.orphan_chunks())
        for subject in orphans & self._suspect_chunks:
            await self.snapshots.purge_chunks(subject)
            log.info("orphan snapshot chunks removed", extra={"subject": subject})
        self._suspect_chunks = orphans - self._suspect_chunks

    async def refresh_gauges(self) -> None:
        info = await self.store.js.stream_info(self.store.stream)
        STREAM_BYTES.set(info.state.bytes)
        STREAM_MESSAGES.set(info.state.messages)
        held = await self.snapshots.list()
        if held:
            SNAPSHOT_NEWEST_SEQ.set(held[0].seq)
            SNAPSHOT_NEWEST_TIME.set(held[0].created_at)
        COMPACTION_WATERMARK.set(await self.snapshots.watermark())
