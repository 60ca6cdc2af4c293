"""The projector against a real nats-server and a real SQLite file: what it builds from the
log, that replays and restarts change nothing, and that rebuilds give the same read model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import msgspec
import pytest

from gsch.eventstore.guard import LogBehindError
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import latency_subject, request_subject
from gsch.metrics import PROJECTION_LAST_SEQ
from gsch.model.events import LatencyReported
from gsch.projections.projector import Projector, rebuild
from gsch.projections.queries import RequestFilter
from gsch.projections.reader import ReadModel
from gsch.projections.schema import SCHEMA_VERSION
from gsch.projections.views import Amount
from gsch.projections.writer import apply_batch
from tests.support.scenario import Log, dump, running, write_scenario

GI = 2**30


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "read" / "model.sqlite"


async def test_scenario_is_projected(store: EventStore, db_path: Path) -> None:
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
        assert projector.last_seq == last
        assert PROJECTION_LAST_SEQ._value.get() == last
        reader = ReadModel(db_path, store.stream)
        try:
            async with reader.snapshot() as snap:
                assert snap.sequence == last
                bound = await snap.request("req-bound")
                rejected = await snap.request("req-rejected")
                requeued = await snap.request("req-requeued")
                queued = await snap.request("req-queued")
                c1_nodes = await snap.nodes("c1")
                c2 = await snap.cluster("c2")
        finally:
            await reader.close()
    assert bound is not None
    assert rejected is not None
    assert requeued is not None
    assert queued is not None
    assert (bound.state, bound.attempts, bound.policy, bound.project) == (
        "bound", 1, "GMostRequestedPriority", "p1"
    )  # fmt: skip
    assert bound.placement is not None
    assert (bound.placement.cluster, bound.placement.node) == ("c1", "n1")
    assert bound.explanation is not None
    assert bound.explanation.summary == "placed on c1/n1"
    assert (rejected.state, rejected.reason_field) == ("rejected", "workload")
    assert rejected.reason == "workload.kind: 'Foo' is not an allowed kind"
    assert rejected.submitted_at is not None
    assert rejected.policy is None
    assert (requeued.state, requeued.attempts, requeued.placement) == ("queued", 2, None)
    assert requeued.reason == "binding failed: timeout"
    # The explanation of the failed placement stays visible after the requeue.
    assert requeued.explanation is not None
    assert (queued.state, queued.fast, queued.level, queued.mode) == (
        "queued", True, "fast", "cluster"
    )  # fmt: skip
    assert c1_nodes is not None
    n1, n2 = c1_nodes.items
    assert n1.reserved == Amount(cpu_m=500, memory=GI, gpu=0, pods=1)
    assert n1.free == Amount(cpu_m=4000 - 100 - 500, memory=8 * GI - GI // 2 - GI, pods=106)
    assert (n1.reservations, n2.reservations, n2.ready) == (1, 0, False)
    # The requeue released the reservation on c2/n1.
    assert c2 is not None
    assert c2.reserved == Amount()
    assert c2.free.cpu_m == 8000


async def test_submitted_order_and_request_events(store: EventStore, db_path: Path) -> None:
    await write_scenario(Log(store))
    last = await store.last_seq()
    await rebuild(store, db_path)
    reader = ReadModel(db_path, store.stream)
    try:
        async with reader.snapshot() as snap:
            items, more = await snap.requests(RequestFilter(), after=0, limit=10)
            events = await snap.request_events("req-requeued")
    finally:
        await reader.close()
    assert [i.id for i in items] == ["req-bound", "req-rejected", "req-requeued", "req-queued"]
    assert more is None
    assert events is not None
    assert events.sequence == last
    assert [e.type for e in events.items] == [
        "RequestAccepted", "RequestClaimed", "PlacementCommitted", "RequestRequeued"
    ]  # fmt: skip
    seqs = [e.seq for e in events.items]
    assert seqs == sorted(seqs)
    requeued = msgspec.json.decode(events.items[-1].event)
    assert requeued["type"] == "RequestRequeued"
    assert requeued["attempt"] == 2


async def test_replaying_the_log_again_changes_nothing(store: EventStore, db_path: Path) -> None:
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    before = await dump(db_path)
    # Forget the checkpoint only: every event is delivered and applied a second time.
    async with aiosqlite.connect(db_path) as db:
        await db.execute("UPDATE checkpoint SET seq = 0")
        await db.commit()
    async with running(Projector(store, db_path)) as projector:
        assert projector.last_seq == 0
        assert await projector.wait_for(last, 10)
    assert await dump(db_path) == before


async def test_checkpoint_survives_a_restart(store: EventStore, db_path: Path) -> None:
    log = Log(store)
    first = await write_scenario(log)
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(first, 10)
    # Mark a row so that re-applying its history from the start would be visible.
    async with aiosqlite.connect(db_path) as db:
        await db.execute(
            "UPDATE requests SET state = 'marked', last_seq = 0 WHERE id = 'req-bound'"
        )
        await db.commit()
    reopened = Projector(store, db_path)
    await reopened.open()
    assert reopened.last_seq == first
    await reopened.close()
    later = await log.finish("req-queued")
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(later, 10)
        assert projector.last_seq == later
    rows = {row[0]: row for row in (await dump(db_path))["requests"]}
    assert rows["req-bound"][2] == "marked"  # not re-applied: it continued from the checkpoint
    assert rows["req-queued"][3] == 1  # finished: the new event was applied


async def test_events_it_cannot_read_are_skipped_and_counted(
    store: EventStore, db_path: Path
) -> None:
    log = Log(store)
    await log.accept("r1")
    # A latency report (understood, not projected) and two events no gsch version wrote.
    await log.append(
        latency_subject("c1", "n1", "LatencyReported"),
        LatencyReported(at=1.0, cluster="c1", node="n1", to_clusters={"c2": 3.0}),
    )
    await store.js.publish(request_subject("r1", "Garbage"), b"not json at all")
    await store.js.publish(request_subject("r1", "Future"), b'{"type":"FromTheFuture","at":1}')
    last = await store.last_seq()
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
        assert await projector.caught_up()
        later = await log.claim("r1")
        assert await projector.wait_for(later, 10)
        # Undecodable events at the end of the log, arriving while the projector is idle.
        await store.js.publish(request_subject("r1", "Garbage"), b"\x00")
        assert await projector.wait_for(later + 1, 10)
        assert await projector.caught_up()
        assert projector.last_seq == later + 1
    rows = (await dump(db_path))["requests"]
    assert [(row[0], row[2]) for row in rows] == [("r1", "scheduling")]


async def test_rebuild_gives_the_same_read_model(store: EventStore, db_path: Path) -> None:
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    before = await dump(db_path)
    assert await rebuild(store, db_path) == last
    assert await dump(db_path) == before
    assert before["checkpoint"] == [(store.stream, last)]


async def test_rebuild_of_an_empty_log(store: EventStore, db_path: Path) -> None:
    await asyncio.to_thread(db_path.parent.mkdir, parents=True)
    await asyncio.to_thread(db_path.write_bytes, b"this is not a database")
    assert await rebuild(store, db_path) == 0
    assert all(rows == [] for rows in (await dump(db_path)).values())


async def test_wait_for_times_out(store: EventStore, db_path: Path) -> None:
    async with running(Projector(store, db_path)) as projector:
        assert not await projector.wait_for(1, 0.2)
        waiting = asyncio.create_task(projector.wait_for(1, 10))
        await Log(store).cluster("c1", "edge")
        assert await waiting


async def test_a_model_of_another_schema_version_is_rebuilt(
    store: EventStore, db_path: Path
) -> None:
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    before = await dump(db_path)
    async with aiosqlite.connect(db_path) as db:
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await db.execute("CREATE TABLE leftover (x)")
    async with running(Projector(store, db_path)) as projector:
        assert projector.last_seq == 0
        assert await projector.wait_for(last, 10)
    assert await dump(db_path) == before


async def test_a_model_ahead_of_the_log_is_kept_and_refused(
    store: EventStore, db_path: Path
) -> None:
    """A checkpoint beyond the end of the log means the log was deleted and re-created (or
    replaced): the projector stops with that error instead of wiping what it derived."""
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    async with aiosqlite.connect(db_path) as db:
        # As if the log had been replaced by a shorter one.
        await db.execute("UPDATE checkpoint SET seq = 1000000")
        await db.commit()
    before = await dump(db_path)
    projector = Projector(store, db_path)
    try:
        with pytest.raises(LogBehindError, match="has already seen sequence 1000000"):
            await projector.run(asyncio.Event())
    finally:
        await projector.close()
    assert await dump(db_path) == before  # nothing wiped
    # Rebuilding is the deliberate way back.
    assert await rebuild(store, db_path) == last


async def test_old_events_applied_out_of_order_change_nothing(
    store: EventStore, db_path: Path
) -> None:
    last = await write_scenario(Log(store))
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    before = await dump(db_path)
    history = await store.read("gsch.events.>")
    assert len(history) == last
    # Newest first: each event is older than what its rows already reflect (the reservation
    # of req-requeued comes after its release, its acceptance after its requeue, ...).
    for replay in (list(reversed(history)), history[: last // 2], history[1::2]):
        async with aiosqlite.connect(db_path, isolation_level=None) as db:
            await apply_batch(db, store.stream, replay, replay[-1].seq)
        assert await dump(db_path) == before
