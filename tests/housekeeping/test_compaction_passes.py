"""A compaction pass reads only what came since the previous one finished, and what it leaves
is what a pass over the whole log leaves: at or below the cut, each cluster subject keeps
its newest message, nothing after the cut is touched, and request events never are. A lost
or garbled record of the previous cut costs a pass over the whole log, loudly; a pass killed
half way is finished by the next."""

from __future__ import annotations

import json
import random

import pytest
from nats.aio.client import Client
from nats.js.api import ObjectMeta

from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.compaction import compact_cluster_events, subject_counts
from gsch.eventstore.snapshots import PURGED_MARK, SNAPSHOT_BUCKET, SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS, ALL_REQUEST_EVENTS
from gsch.housekeeping.housekeeper import compact, write_snapshot
from tests.support.history import RandomHistory, fresh_streams, state_of

Log = dict[str, list[int]]


async def _cluster_log(store: EventStore) -> Log:
    """Every cluster subject's sequences, read message by message (direct gets)."""
    return {
        subject: [stored.seq for stored in await store.read(subject)]
        for subject in await subject_counts(store, ALL_CLUSTER_EVENTS)
    }


def _compacted(log: Log, after: int, through: int) -> Log:
    """What a pass through `through` leaves of `log`, the pass before it having finished
    through `after`: a subject with messages in (after, through] keeps only the newest of
    them at or below the cut; the others are not touched."""
    left = {}
    for subject, seqs in log.items():
        if any(after < seq <= through for seq in seqs):
            below = [seq for seq in seqs if seq <= through]
            left[subject] = [below[-1], *(seq for seq in seqs if seq > through)]
        else:
            left[subject] = seqs
    return left


async def _rounds(history: RandomHistory, snapshots: SnapshotStore, rounds: int) -> None:
    """`rounds` times: random events, then a snapshot of the truth."""
    for _ in range(rounds):
        for _ in range(40):
            await history.step()
        assert await write_snapshot(snapshots, history.truth) is not None


async def _agrees(store: EventStore, snapshots: SnapshotStore, history: RandomHistory) -> None:
    feed = SnapshotFeed(store, snapshots)
    await feed.start(catch_up_timeout=20)
    assert state_of(feed.snapshot) == state_of(history.truth)
    await feed.stop()


async def _second_newest(snapshots: SnapshotStore) -> int:
    """The cut the next pass takes (compaction stays one snapshot behind the newest)."""
    return (await snapshots.list())[1].seq


async def _garble_mark(nc: Client, description: str) -> None:
    bucket = await nc.jetstream().object_store(SNAPSHOT_BUCKET)
    await bucket.put(PURGED_MARK, b"", meta=ObjectMeta(name=PURGED_MARK, description=description))


@pytest.fixture
async def compacted_once(nc: Client, store: EventStore) -> tuple[RandomHistory, SnapshotStore, int]:
    """A history compacted once (the pass finished), with more events and two newer
    snapshots after it: the next pass has a range to read."""
    await fresh_streams(nc)
    snapshots = SnapshotStore(nc, keep=3, timeout=10)
    history = RandomHistory(store, random.Random(31))
    await _rounds(history, snapshots, rounds=2)
    first = await compact(store, snapshots)
    assert first is not None
    assert await snapshots.purged_through() == first.through
    await _rounds(history, snapshots, rounds=2)
    for _ in range(20):  # a tail after the newest snapshot
        await history.step()
    return history, snapshots, first.through


async def test_a_pass_reads_only_what_came_after_the_previous_cut(
    store: EventStore, compacted_once: tuple[RandomHistory, SnapshotStore, int]
) -> None:
    history, snapshots, previous = compacted_once
    before = await _cluster_log(store)
    requests = await subject_counts(store, ALL_REQUEST_EVENTS)
    cut = await _second_newest(snapshots)
    touched = [s for s, seqs in before.items() if any(previous < q <= cut for q in seqs)]
    assert 0 < len(touched) < len(before)  # some subjects had nothing new

    done = await compact(store, snapshots)

    assert done is not None
    assert (done.through, done.subjects) == (cut, len(touched))
    assert await _cluster_log(store) == _compacted(before, previous, cut)
    assert done.purged == sum(map(len, before.values())) - sum(
        map(len, _compacted(before, previous, cut).values())
    )
    assert await subject_counts(store, ALL_REQUEST_EVENTS) == requests
    assert await snapshots.purged_through() == cut
    await _agrees(store, snapshots, history)
    # Again: nothing more to remove.
    assert (await compact_cluster_events(store, cut, previous)).purged == 0


@pytest.mark.parametrize(
    ("description", "logged"),
    [
        ("not json", "previous cut unreadable"),
        (json.dumps({"through": "12"}), "previous cut unreadable"),
        (json.dumps({"through": 10**12}), "previous cut is ahead of this one"),
    ],
)
async def test_a_garbled_previous_cut_costs_a_pass_over_the_whole_log(
    nc: Client,
    store: EventStore,
    compacted_once: tuple[RandomHistory, SnapshotStore, int],
    caplog: pytest.LogCaptureFixture,
    description: str,
    logged: str,
) -> None:
    history, snapshots, _previous = compacted_once
    before = await _cluster_log(store)
    cut = await _second_newest(snapshots)
    await _garble_mark(nc, description)

    done = await compact(store, snapshots)

    assert done is not None
    assert logged in caplog.text
    assert done.subjects == len([s for s, seqs in before.items() if seqs[0] <= cut])
    assert await _cluster_log(store) == _compacted(before, 0, cut)
    assert await snapshots.purged_through() == cut  # the garbled record is replaced
    await _agrees(store, snapshots, history)


async def test_a_lost_previous_cut_costs_a_pass_over_the_whole_log(
    nc: Client, store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A log compacted by a version that kept no record of its cut (or the record was
    deleted): the watermark says it was compacted, so the pass says why it reads it all."""
    await fresh_streams(nc)
    snapshots = SnapshotStore(nc, keep=3, timeout=10)
    history = RandomHistory(store, random.Random(43))
    await _rounds(history, snapshots, rounds=3)
    cut = await _second_newest(snapshots)
    await snapshots.raise_watermark(cut // 2)
    before = await _cluster_log(store)

    done = await compact(store, snapshots)

    assert done is not None
    assert "previous cut not recorded" in caplog.text
    assert await _cluster_log(store) == _compacted(before, 0, cut)
    await _agrees(store, snapshots, history)


async def test_a_pass_killed_half_way_is_finished_by_the_next(
    store: EventStore, compacted_once: tuple[RandomHistory, SnapshotStore, int]
) -> None:
    """Killed half way, a pass has raised the watermark and, for each subject, done some of
    the purges it does oldest first: what a pass through an earlier cut does. Its cut is not
    recorded, so the next pass reads again from the previous one and leaves what a pass
    that was never interrupted leaves."""
    history, snapshots, previous = compacted_once
    before = await _cluster_log(store)
    newest = max(seq for seqs in before.values() for seq in seqs)
    cut = await _second_newest(snapshots)
    await snapshots.raise_watermark(cut)
    killed = await compact_cluster_events(store, (previous + cut) // 2, previous)
    assert killed.purged > 0
    assert await snapshots.purged_through() == previous
    await _rounds(history, snapshots, rounds=1)  # the next round has a newer cut
    after_kill = await _cluster_log(store)
    uninterrupted = {
        subject: [*before.get(subject, []), *(q for q in seqs if q > newest)]
        for subject, seqs in after_kill.items()
    }
    next_cut = await _second_newest(snapshots)

    done = await compact(store, snapshots)

    assert done is not None
    assert done.through == next_cut
    assert await _cluster_log(store) == _compacted(uninterrupted, previous, next_cut)
    assert await snapshots.purged_through() == next_cut
    await _agrees(store, snapshots, history)
