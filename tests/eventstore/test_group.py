"""Group commit: concurrent atomic appends of one process share a batch, yet each keeps its
own all-or-nothing outcome and its own expectations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import nats
import pytest

from gsch.eventstore.group import GroupCommitter
from gsch.eventstore.pacing import BatchPacer
from gsch.eventstore.store import (
    Append,
    ConflictError,
    EventStore,
    EventTooLargeError,
    StoreError,
    Write,
)
from gsch.eventstore.subjects import NodeKey, RequestKey, node_history, request_history
from gsch.model.events import CapacityReserved, Explanation, PlacementCommitted
from gsch.model.resources import Resources
from gsch.runtime.embedded import EmbeddedCluster
from tests.support.fleet import declare_r3


def decision(request_id: str, node: str, node_seq: int) -> list[Write]:
    committed = PlacementCommitted(
        at=1.0, attempt=1, placements=(), level_index=0,
        explanation=Explanation(),
        worker="w",
    )  # fmt: skip
    reserved = CapacityReserved(
        at=1.0, cluster="c1", node=node, request_id=request_id, attempt=1,
        amount=Resources(cpu_m=100),
    )  # fmt: skip
    return [
        Write(RequestKey(request_id), (committed,), expect=0, msg_ids=(f"{request_id}-c",)),
        Write(NodeKey("c1", node), (reserved,), expect=node_seq, msg_ids=(f"{request_id}-r",)),
    ]


async def test_concurrent_decisions_all_land_with_consecutive_sequences(store: EventStore) -> None:
    results = await asyncio.gather(
        *(store.append(*decision(f"r{i}", f"n{i}", 0)) for i in range(50))
    )
    for sequences in results:
        assert sequences[1] == sequences[0] + 1  # each decision's events stay together
    assert len({s for pair in results for s in pair}) == 100
    for i in range(50):
        assert len(await store.read(request_history(f"r{i}"))) == 1


async def test_a_stale_member_fails_alone(store: EventStore) -> None:
    # n-stale already has an event: a decision expecting it empty must lose, the others not.
    await store.append(*decision("first", "n-stale", 0))
    outcomes = await asyncio.gather(
        store.append(*decision("ok-1", "n-a", 0)),
        store.append(*decision("loser", "n-stale", 0)),
        store.append(*decision("ok-2", "n-b", 0)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], ConflictError)
    assert isinstance(outcomes[0], list)
    assert isinstance(outcomes[2], list)
    # All or nothing for the loser: its request half was not stored either.
    assert await store.last(request_history("loser")) is None
    assert await store.last(request_history("ok-1")) is not None


async def test_two_decisions_on_one_node_never_both_win(store: EventStore) -> None:
    outcomes = await asyncio.gather(
        store.append(*decision("a", "n-hot", 0)),
        store.append(*decision("b", "n-hot", 0)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert len(await store.read(node_history("c1", "n-hot"))) == 1


class Rebasing:
    """A writer's view that knows node n-r moved on to `node_seq` and that drop-me lost."""

    def __init__(self, node_seq: int) -> None:
        self.node_seq = node_seq

    async def catch_up(self, seq: int | None = None) -> None:
        pass

    def rebase(self, item: Append) -> Append | None:
        if isinstance(item.event, CapacityReserved) and item.expect_seq == 0:
            if item.event.request_id == "drop-me":
                return None
            return replace(item, expect_seq=self.node_seq)  # re-validated on newer state
        return item


async def test_a_revalidator_can_drop_or_rebase_before_sending(store: EventStore) -> None:
    first = await store.append(*decision("base", "n-r", 0))
    view = Rebasing(node_seq=first[1])
    rebased = await store.append(*decision("rebased", "n-r", 0), revalidator=view)
    assert rebased[1] == rebased[0] + 1
    with pytest.raises(ConflictError):
        await store.append(*decision("drop-me", "n-other", 0), revalidator=view)
    assert await store.last(request_history("drop-me")) is None


async def test_a_writer_that_offered_no_view_is_not_consulted(store: EventStore) -> None:
    """Persistence never calls up into a writer that did not offer its view for this append
    (in an all-roles process the binder's appends must not pass through the worker's): the
    stale expectation goes to the server as it was written, and loses."""
    first = await store.append(*decision("base-2", "n-s", 0))
    view = Rebasing(node_seq=first[1])
    outcomes = await asyncio.gather(
        store.append(*decision("mine", "n-s", 0), revalidator=view),
        store.append(*decision("theirs", "n-s", 0)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], list)
    assert isinstance(outcomes[1], ConflictError)


def _huge(request_id: str) -> Write:
    """A commit whose explanation no message can carry (over the server's 1 MiB)."""
    committed = PlacementCommitted(
        at=1.0, attempt=1, placements=(), level_index=0,
        explanation=Explanation(summary="x" * (1024 * 1024 + 1)), worker="w",
    )  # fmt: skip
    return Write(RequestKey(request_id), (committed,), expect=0)


async def test_an_oversized_member_fails_alone_and_the_committer_goes_on(
    store: EventStore,
) -> None:
    """A 1 MiB event used to escape the committer as the client library's MaxPayloadError:
    its group never settled and every later decision on its scopes waited for ever."""
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            store.append(*decision("ok-1", "n-a", 0)),
            store.append(_huge("big"), *decision("big", "n-b", 0)[1:]),
            store.append(*decision("ok-2", "n-c", 0)),
            return_exceptions=True,
        ),
        10,
    )
    assert isinstance(outcomes[1], EventTooLargeError), outcomes[1]
    assert isinstance(outcomes[0], list)
    assert isinstance(outcomes[2], list)
    assert await store.last(request_history("big")) is None
    # Its scopes are free: the next decision on the same node is sent and lands.
    assert len(await asyncio.wait_for(store.append(*decision("next", "n-b", 0)), 10)) == 2


class _FailsOnce:
    """The real log, except that the first batch fails with an error nobody foresaw."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.failed = False

    @property
    def give_up_after(self) -> float:
        return self.store.give_up_after

    async def publish_batch(self, items: Sequence[Append]) -> list[int]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("unforeseen")
        return await self.store.publish_batch(items)

    async def member_status(self, items: Sequence[Append]) -> list[int] | None:
        return await self.store.member_status(items)


async def test_an_unforeseen_error_settles_its_group_and_never_the_loop(store: EventStore) -> None:
    committer = GroupCommitter(_FailsOnce(store), max_groups_in_flight=1)
    first = [item for write in decision("r-1", "n-1", 0) for item in write.appends()]
    try:
        with pytest.raises(StoreError, match="unforeseen"):
            await asyncio.wait_for(committer.submit(first), 10)
        # Nothing of it landed; the same scopes take the next decision, which lands.
        assert await store.last(request_history("r-1")) is None
        again = [item for write in decision("r-1", "n-1", 0) for item in write.appends()]
        sequences = await asyncio.wait_for(committer.submit(again), 10)
        assert sequences[1] == sequences[0] + 1
    finally:
        await committer.close()


class Counting(EventStore):
    """The event store, counting the batches it sends and the members it checks in the log."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store.nc, request_timeout=2.0, give_up_after=30.0)
        self.batches = 0
        self.checked = 0

    async def publish_batch(self, items: Sequence[Append]) -> list[int]:
        self.batches += 1
        return await super().publish_batch(items)

    async def member_status(self, items: Sequence[Append]) -> list[int] | None:
        self.checked += 1
        return await super().member_status(items)


async def test_a_refused_group_finds_its_stale_member_from_the_servers_answer(
    store: EventStore,
) -> None:
    """The server names the sequence the stale scope ends at: only the member expecting that
    scope is checked against the log; the others go out again at once, in one more batch,
    and the next groups are sized for the share of decisions that went stale."""
    await store.append(*decision("before", "n-moved", 0))
    counting = Counting(store)
    outcomes = await asyncio.gather(
        *(counting.append(*decision(f"fine-{i}", f"n-{i}", 0)) for i in range(5)),
        counting.append(*decision("stale", "n-moved", 0)),
        return_exceptions=True,
    )
    assert all(isinstance(o, list) for o in outcomes[:5]), outcomes
    assert isinstance(outcomes[5], ConflictError)
    assert counting.batches == 2  # refused once, then the five land together
    assert counting.checked == 1  # the stale one alone was looked up
    grouper = counting._grouper
    assert grouper is not None
    # One stale decision in the eleven sent: groups of eleven decisions (two messages each)
    # land the most per batch while that lasts.
    assert grouper.size.limit == 22
    assert await store.last(request_history("stale")) is None


async def test_on_a_replicated_stream_a_lost_race_is_a_conflict_not_an_error(
    nats_cluster: EmbeddedCluster,
) -> None:
    """Two processes racing for a node on an R3 stream: the batch that loses while both are
    in flight is refused with another code (10164, no sequence) than on a single server
    (10071). It must still be a conflict to re-plan, not an error that leaves the request to
    its lease."""
    await declare_r3(nats_cluster.urls, lease_seconds=30)
    connections = [await nats.connect(nats_cluster.urls.split(",")) for _ in range(2)]
    try:
        stores = [EventStore(nc, request_timeout=5.0, give_up_after=30.0) for nc in connections]
        for race in range(10):
            appends = [
                store.append(*decision(f"r{race}-{index}", f"n-{race}", 0))
                for index, store in enumerate(stores)
            ]
            outcomes = await asyncio.gather(*appends, return_exceptions=True)
            assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "list"]
    finally:
        for nc in connections:
            await nc.close()


class _Gated:
    """The real log, holding every batch at a gate until the test opens it."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.gate = asyncio.Event()
        self.sent: list[int] = []  # messages in each batch, as it was sent

    @property
    def give_up_after(self) -> float:
        return self.store.give_up_after

    async def publish_batch(self, items: Sequence[Append]) -> list[int]:
        self.sent.append(len(items))
        await self.gate.wait()
        return await self.store.publish_batch(items)

    async def member_status(self, items: Sequence[Append]) -> list[int] | None:
        return await self.store.member_status(items)

    async def subject_at(self, seq: int) -> str | None:
        return await self.store.subject_at(seq)


async def test_a_second_group_goes_out_while_one_is_in_flight_only_when_full(
    store: EventStore,
) -> None:
    """Groups in flight overlap only when enough waits to fill one: a trickle of decisions
    waits for the group in flight instead of going out as many small batches."""
    gated = _Gated(store)
    committer = GroupCommitter(gated, max_groups_in_flight=3)
    committer.size.limit = 4  # two decisions of two messages each

    def items(name: str) -> list[Append]:
        return [item for write in decision(name, f"n-{name}", 0) for item in write.appends()]

    try:
        first = asyncio.create_task(committer.submit(items("a")))
        await asyncio.sleep(0.05)
        assert gated.sent == [2]  # the first group goes at once, whatever its size
        trickle = asyncio.create_task(committer.submit(items("b")))
        await asyncio.sleep(0.05)
        assert gated.sent == [2]  # half a group waits for the one in flight
        filled = asyncio.create_task(committer.submit(items("c")))
        await asyncio.sleep(0.05)
        assert gated.sent == [2, 4]  # a full group overlaps it
        gated.gate.set()
        results = await asyncio.wait_for(asyncio.gather(first, trickle, filled), 10)
        assert len({seq for pair in results for seq in pair}) == 6
    finally:
        await committer.close()


class _SlowView:
    """A writer's view that changes nothing and takes its time to catch up (a worker whose
    feed lags behind the log)."""

    def __init__(self) -> None:
        self.caught_up = asyncio.Event()

    async def catch_up(self, seq: int | None = None) -> None:
        await self.caught_up.wait()

    def rebase(self, item: Append) -> Append | None:
        return item


async def test_the_others_of_a_refused_group_do_not_wait_for_the_stale_ones_writer(
    store: EventStore,
) -> None:
    await store.append(*decision("earlier", "n-taken", 0))
    view = _SlowView()
    fine = [
        asyncio.ensure_future(
            store.append(*decision(f"ok-{i}", f"n-free-{i}", 0), revalidator=view)
        )
        for i in range(4)
    ]
    stale = asyncio.ensure_future(store.append(*decision("late", "n-taken", 0), revalidator=view))
    # The four land while the stale member's writer is still catching up.
    landed = await asyncio.wait_for(asyncio.gather(*fine), 10)
    assert all(pair[1] == pair[0] + 1 for pair in landed)
    assert not stale.done()
    view.caught_up.set()
    with pytest.raises(ConflictError):
        await asyncio.wait_for(stale, 10)
    assert await store.last(request_history("late")) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_while_batches_queue_a_small_group_is_held_a_full_one_is_not_nor_one_after_a_pause(
    store: EventStore,
) -> None:
    """Paced: decisions arriving within the gap after a batch wait and go out together; a
    full group goes at once; after a pause longer than the gap a lone decision goes at once."""
    gated = _Gated(store)
    gated.gate.set()  # every batch goes straight to the log; the test reads their sizes
    clock = _Clock()
    pacer = BatchPacer(max_gap=1.0, clock=clock)
    pacer.answered(0.010)
    for _ in range(4):
        pacer.answered(0.030)  # batches queued at the server: a gap of 20 ms
    committer = GroupCommitter(gated, max_groups_in_flight=1, pacer=pacer)

    def items(name: str) -> list[Append]:
        return [item for write in decision(name, f"n-{name}", 0) for item in write.appends()]

    try:
        pacer.sent()  # a batch has just gone
        held = [asyncio.ensure_future(committer.submit(items(n))) for n in ("a", "b")]
        await asyncio.sleep(0.1)  # the wake-up is due, but the pacer's clock has not moved
        assert gated.sent == []
        clock.now += 0.05
        await asyncio.wait_for(asyncio.gather(*held), 10)
        assert gated.sent == [4]  # the two went out as one batch
        committer.size.limit = 4
        pacer.sent()
        full = [asyncio.ensure_future(committer.submit(items(n))) for n in ("c", "d")]
        await asyncio.wait_for(asyncio.gather(*full), 10)
        assert gated.sent == [4, 4]  # a full group did not wait for the gap
        assert pacer.gap > 0
        clock.now += 1.0  # a pause
        await asyncio.wait_for(committer.submit(items("e")), 10)
        assert gated.sent == [4, 4, 2]
    finally:
        await committer.close()
