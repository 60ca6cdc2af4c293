"""The projector: follows the whole event log from its checkpoint and applies it to SQLite.

The follower's callback only enqueues (it runs on the subscription's delivery task, and a
slow one makes nats-py drop messages: reference/jetstream-notes §5.8); one applier task takes
whatever is queued, up to `BATCH_SIZE` events, and applies it in one transaction together
with the checkpoint (§3.1). The checkpoint is the only position: a restart continues from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aiosqlite
import nats.errors

from gsch.aio import reraise_swallowed_cancel
from gsch.clusters.restore import newest_snapshot
from gsch.eventstore.guard import LogBehindError
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_EVENTS
from gsch.eventstore.watch import Follower
from gsch.metrics import E2E_DURATION, PROJECTION_LAG, PROJECTION_LAST_SEQ
from gsch.projections import lock
from gsch.projections.schema import connect_writer
from gsch.projections.seeding import read_cluster_seed, seed_clusters
from gsch.projections.writer import apply_batch, read_checkpoint

log = logging.getLogger(__name__)

BATCH_SIZE = 500
IDLE_TICK = 0.5  # how soon the checkpoint moves past undecodable events at the end of the log
LAG_INTERVAL = 5.0  # how often the lag gauge is refreshed from the stream's last sequence


class Inbox:
    """What the follower delivered: a queue, and how far along the log delivery has got.

    The follower skips events it cannot decode without telling the handler which sequence
    they had. Counting the skips after the last delivered event tells at least how far the log
    has been read when its tail cannot be decoded (where compaction or retention left gaps,
    the checkpoint moves on with the next delivered event).
    """

    def __init__(self, after: int) -> None:
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue()
        self.follower: Follower | None = None
        self._last_delivered = after
        self._skipped_before = 0

    def put(self, stored: StoredEvent) -> None:
        self.queue.put_nowait(stored)
        self._last_delivered = stored.seq
        self._skipped_before = self._skipped()

    def delivered_through(self) -> int:
        return self._last_delivered + (self._skipped() - self._skipped_before)

    def _skipped(self) -> int:
        return self.follower.undecodable if self.follower is not None else 0


class Projector:
    def __init__(
        self, store: EventStore, db_path: Path, snapshots: SnapshotStore | None = None
    ) -> None:
        self._store = store
        self.db_path = db_path
        self._snapshots = snapshots
        self._db: aiosqlite.Connection | None = None
        self._last_seq = 0
        # Cluster events at or below this were seeded from a snapshot; the watermark is the
        # newest compaction the lag loop has seen (below it, the log may have gaps).
        self._cluster_floor = 0
        self._watermark = 0
        self._advanced = asyncio.Event()
        self._started_at = time.time()

    @property
    def stream(self) -> str:
        return self._store.stream

    @property
    def last_seq(self) -> int:
        """The last stream sequence applied to the read model (its checkpoint)."""
        return self._last_seq

    async def open(self) -> None:
        if self._db is not None:
            return
        self._db = await connect_writer(self.db_path)
        self._set_last_seq(await read_checkpoint(self._db, self._store.stream))
        self._cluster_floor = await read_cluster_seed(self._db, self._store.stream)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log from the checkpoint until `stop` is set."""
        await self.open()
        await self._refuse_a_shorter_log()
        await self._refresh_watermark()
        await self._seed_if_compacted()
        inbox = Inbox(self._last_seq)
        follower = Follower(self._store, ALL_EVENTS, inbox.put)
        inbox.follower = follower
        await follower.start(self._last_seq)
        applier = asyncio.create_task(self._apply_loop(inbox), name="projector-apply")
        lag = asyncio.create_task(self._lag_loop(), name="projector-lag")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({applier, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not applier.done():
                inbox.queue.put_nowait(None)  # finish the batch in hand, then return
            await applier
        finally:
            for task in (stopping, lag, applier):
                task.cancel()
            for task in (stopping, lag, applier):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await follower.stop()

    async def run_until(self, seq: int) -> None:
        """Follow the log until the checkpoint has reached `seq`."""
        stop = asyncio.Event()
        waiter = asyncio.create_task(self._stop_at(seq, stop))
        try:
            await self.run(stop)
        finally:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until the read model reflects `seq`; False if `timeout` seconds pass first."""
        try:
            async with asyncio.timeout(None if math.isinf(timeout) else timeout):
                while self._last_seq < seq:
                    await self._advanced.wait()
        except TimeoutError:
            return False
        return True

    async def caught_up(self) -> bool:
        """Whether the checkpoint has reached the newest event in the log at call time."""
        stream_last = await self._store.newest_seq()
        PROJECTION_LAG.set(max(0, stream_last - self._last_seq))
        return self._last_seq >= stream_last

    # --- applying ------------------------------------------------------------------------

    async def _apply_loop(self, inbox: Inbox) -> None:
        queue = inbox.queue
        while True:
            try:
                async with asyncio.timeout(IDLE_TICK):
                    first = await queue.get()
            except TimeoutError:
                # Nothing decodable arrived; the log may still have moved past skipped events.
                if inbox.delivered_through() > self._last_seq:
                    await self._apply([], inbox.delivered_through())
                continue
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < BATCH_SIZE and not queue.empty():
                item = queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            # Taken together with the batch, so no event can have arrived in between.
            through = inbox.delivered_through() if queue.empty() else batch[-1].seq
            await self._apply(batch, max(through, batch[-1].seq))
            if stopping:
                return

    async def _apply(self, batch: list[StoredEvent], checkpoint: int) -> None:
        db = self._require_db()
        # An ordered consumer that resets may deliver again what was applied.
        fresh = [stored for stored in batch if stored.seq > self._last_seq]
        if not fresh and checkpoint <= self._last_seq:
            return
        checkpoint = max(checkpoint, self._last_seq)
        await self._seed_if_compacted()
        bound = await apply_batch(db, self._store.stream, fresh, checkpoint, self._cluster_floor)
        for binding in bound:
            # Only what happened while this process runs: a replay is history, not latency.
            if binding.at >= self._started_at:
                E2E_DURATION.labels(stage="bound").observe(binding.seconds)
        self._set_last_seq(checkpoint)

    def _set_last_seq(self, seq: int) -> None:
        self._last_seq = seq
        PROJECTION_LAST_SEQ.set(seq)
        # Wake every waiter; they re-check and wait on a fresh event.
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _stop_at(self, seq: int, stop: asyncio.Event) -> None:
        await self.wait_for(seq, math.inf)
        stop.set()

    async def _refresh_watermark(self) -> None:
        if self._snapshots is not None:
            self._watermark = await self._snapshots.watermark()

    async def _seed_if_compacted(self) -> None:
        """Behind the compaction watermark, cluster events this model has not applied may be
        gone: take the cluster tables from the newest good snapshot instead."""
        if self._snapshots is None or self._watermark <= max(self._last_seq, self._cluster_floor):
            return
        restored = await newest_snapshot(self._snapshots)
        await seed_clusters(self._require_db(), self._store.stream, restored.snapshot, restored.seq)
        log.warning(
            "read model's cluster tables seeded from a snapshot (the log behind them was"
            " compacted)",
            extra={"checkpoint": self._last_seq, "snapshot_seq": restored.seq,
                   "watermark": self._watermark},
        )  # fmt: skip
        self._cluster_floor = restored.seq

    async def _lag_loop(self) -> None:
        while True:
            try:
                await self.caught_up()
                await self._refresh_watermark()
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("projection lag unknown", extra={"error": repr(exc)})
            reraise_swallowed_cancel()
            await asyncio.sleep(LAG_INTERVAL)

    async def _refuse_a_shorter_log(self) -> None:
        """A checkpoint beyond the end of the log means the log was deleted, re-created or
        replaced: the read model describes another history. It is not wiped on the side;
        whoever replaced the log on purpose rebuilds it (`gsch projections rebuild`)."""
        if self._last_seq == 0:
            return
        stream_last = await self._store.last_seq()
        if self._last_seq > stream_last:
            raise LogBehindError(f"the read model {self.db_path}", self._last_seq, stream_last)

    def _require_db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the projector is not open")
        return self._db


async def start_projecting(
    store: EventStore,
    db_path: Path,
    snapshots: SnapshotStore,
    stack: AsyncExitStack,
    tasks: list[asyncio.Task[None]],
    stop: asyncio.Event,
    derived: list[Callable[[], int]],
) -> Projector:
    """A process's projector of the read model at `db_path`, running until `stop`: the file
    held (no rebuild replaces it under a running process), opened, closed with `stack`, and
    its position among what the process `derived` from the log."""
    stack.enter_context(lock.serving(db_path))
    projector = Projector(store, db_path, snapshots)
    await projector.open()
    stack.push_async_callback(projector.close)
    derived.append(lambda: projector.last_seq)
    tasks.append(asyncio.create_task(projector.run(stop)))
    return projector


async def rebuild(store: EventStore, db_path: Path, snapshots: SnapshotStore | None = None) -> int:
    """Delete the read model and replay the log up to its newest event at the start (cluster
    tables from the newest snapshot when the log was compacted)."""
    await asyncio.to_thread(_delete_database, db_path)
    target = await store.newest_seq()
    projector = Projector(store, db_path, snapshots)
    await projector.open()
    try:
        if target > 0:
            await projector.run_until(target)
    finally:
        await projector.close()
    log.info("read model rebuilt", extra={"last_seq": target, "path": str(db_path)})
    return target


def _delete_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
