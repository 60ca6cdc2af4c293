"""Group commit: concurrent atomic appends of one process share a batch, yet each keeps its
own all-or-nothing outcome and its own expectations."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gsch.eventstore.store import Append, ConflictError, EventStore
from gsch.eventstore.subjects import node_history, node_subject, request_history, request_subject
from gsch.model.events import CapacityReserved, Explanation, PlacementCommitted
from gsch.model.resources import Resources


def decision(request_id: str, node: str, node_seq: int) -> list[Append]:
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
        Append(request_subject(request_id, "PlacementCommitted"), committed, f"{request_id}-c",
               expect_seq=0, expect_scope=request_history(request_id)),
        Append(node_subject("c1", node, "CapacityReserved"), reserved, f"{request_id}-r",
               expect_seq=node_seq, expect_scope=node_history("c1", node)),
    ]  # fmt: skip


async def test_concurrent_decisions_all_land_with_consecutive_sequences(store: EventStore) -> None:
    results = await asyncio.gather(
        *(store.append_batch(decision(f"r{i}", f"n{i}", 0)) for i in range(50))
    )
    for sequences in results:
        assert sequences[1] == sequences[0] + 1  # each decision's events stay together
    assert len({s for pair in results for s in pair}) == 100
    for i in range(50):
        assert len(await store.read(request_history(f"r{i}"))) == 1


async def test_a_stale_member_fails_alone(store: EventStore) -> None:
    # n-stale already has an event: a decision expecting it empty must lose, the others not.
    await store.append_batch(decision("first", "n-stale", 0))
    outcomes = await asyncio.gather(
        store.append_batch(decision("ok-1", "n-a", 0)),
        store.append_batch(decision("loser", "n-stale", 0)),
        store.append_batch(decision("ok-2", "n-b", 0)),
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
        store.append_batch(decision("a", "n-hot", 0)),
        store.append_batch(decision("b", "n-hot", 0)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert len(await store.read(node_history("c1", "n-hot"))) == 1


async def test_precheck_can_drop_or_rebase_before_sending(store: EventStore) -> None:
    first = await store.append_batch(decision("base", "n-r", 0))
    node_seq = first[1]

    def rebase(item: Append) -> Append | None:
        if isinstance(item.event, CapacityReserved) and item.expect_seq == 0:
            if item.event.request_id == "drop-me":
                return None
            return replace(item, expect_seq=node_seq)  # the writer re-validated on newer state
        return item

    store.precheck = rebase
    rebased = await store.append_batch(decision("rebased", "n-r", 0))
    assert rebased[1] == rebased[0] + 1
    with pytest.raises(ConflictError):
        await store.append_batch(decision("drop-me", "n-other", 0))
    assert await store.last(request_history("drop-me")) is None
