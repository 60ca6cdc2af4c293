"""Crash safety of the bounded history: `gsch snapshot --compact` killed with SIGKILL at
moments spread over its run (reading the state, writing the snapshot, compacting). After
each kill nothing is lost: the newest good snapshot plus the log after it is the state a
process that saw every event holds, and the audit of the compacted log is clean; a run left
alone then finishes what the killed ones left behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gsch.audit import audit
from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.compaction import subject_counts
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.procs import ChildProcess
from gsch.tools.history import HistoryGenerator, HistoryShape
from tests.support.history import state_of

pytestmark = pytest.mark.slow

# Shares of an uninterrupted run at which the next runs are killed.
KILL_AT = (0.5, 0.6, 0.7, 0.78, 0.85, 0.9, 0.95, 0.99)


def _snapshot_command(url: str, root: Path, round_: int) -> ChildProcess:
    args = ["snapshot", "--compact", "--nats", url, "--data-dir", str(root / "cli")]
    return ChildProcess(args, root / f"snapshot-{round_}.log")


async def test_kill_9_while_snapshotting_and_compacting_loses_nothing(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore
) -> None:
    # Many live reservations, so a snapshot takes a while to write.
    shape = HistoryShape(
        clusters=100, nodes_per_cluster=10, placements_per_tick=80, lifetime_ticks=10_000,
        days=1,
    )  # fmt: skip
    generator = HistoryGenerator(store, shape)
    await generator.run(60_000)
    # The truth: a process that has followed every event since the first.
    truth = SnapshotFeed(store)
    await truth.start()
    snapshots = SnapshotStore(store.nc, timeout=20)

    async def agreed() -> None:
        newest = await store.last(ALL_CLUSTER_EVENTS)
        assert newest is not None
        assert await truth.snapshot.wait_for(newest.seq, 20)
        restored = SnapshotFeed(store, snapshots)
        state = await restored.start()
        await restored.stop()
        assert state_of(state) == state_of(truth.snapshot)
        report = await audit(store, snapshots=snapshots)
        assert report.ok, report.summary()

    try:
        clean = _snapshot_command(nats_server.url, tmp_path, 0)
        started = time.monotonic()
        await clean.start()
        assert clean.process is not None
        assert await clean.process.wait() == 0
        full_run = time.monotonic() - started
        killed_running = 0
        for round_, share in enumerate(KILL_AT, start=1):
            await generator.run(generator.written + 3000)  # something new to snapshot
            child = _snapshot_command(nats_server.url, tmp_path, round_)
            await child.start()
            assert child.process is not None
            await asyncio.sleep(full_run * share)
            if child.process.returncode is None:
                killed_running += 1
            child.kill()
            await child.process.wait()
            await agreed()
        assert killed_running >= len(KILL_AT) // 2, "the kills came too late to prove anything"
        # A run that is left alone finishes what the killed ones left, and compacts.
        await generator.run(generator.written + 3000)
        last = _snapshot_command(nats_server.url, tmp_path, 99)
        await last.start()
        assert last.process is not None
        assert await last.process.wait() == 0
        await agreed()
        assert await snapshots.watermark() > 0
        # And left nothing behind: below the last finished pass's cut, one message a subject.
        purged_through = await snapshots.purged_through()
        assert purged_through
        for subject in await subject_counts(store, ALL_CLUSTER_EVENTS):
            kept = [e.seq for e in await store.read(subject) if e.seq <= purged_through]
            assert len(kept) <= 1, (subject, kept)
    finally:
        await truth.stop()
