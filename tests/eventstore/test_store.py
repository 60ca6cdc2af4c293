"""The event store against a real nats-server: conditional appends, atomic batches, read-back."""

from __future__ import annotations

import pytest

from gsch.eventstore.store import Append, ConflictError, EventStore
from gsch.eventstore.subjects import node_history, node_subject, request_history, request_subject
from gsch.model.events import CapacityReserved, RequestClaimed
from gsch.model.resources import Resources


def claim(worker: str) -> RequestClaimed:
    return RequestClaimed(at=1.0, attempt=1, worker=worker)


def conditional(rid: str, expect: int, worker: str, msg_id: str) -> Append:
    return Append(
        request_subject(rid, "RequestClaimed"),
        claim(worker),
        msg_id,
        expect_seq=expect,
        expect_scope=request_history(rid),
    )


async def test_only_one_of_two_creates_wins(store: EventStore) -> None:
    first = await store.append(conditional("r1", 0, "a", "m-a"))
    with pytest.raises(ConflictError):
        await store.append(conditional("r1", 0, "b", "m-b"))
    state = await store.load_request("r1")
    assert state.last_seq == first
    assert state.claimed_by == "a"


async def test_retry_of_a_stored_append_resolves_to_its_sequence(store: EventStore) -> None:
    item = conditional("r2", 0, "a", "same-id")
    first = await store.append(item)
    # The same append again (as after a lost acknowledgement) is recognised as ours.
    assert await store.append(item) == first
    assert len(await store.read(request_history("r2"))) == 1


async def test_batch_is_all_or_nothing(store: EventStore) -> None:
    node = Append(
        node_subject("c.1", "n1", "CapacityReserved"),
        CapacityReserved(
            at=1.0,
            cluster="c.1",
            node="n1",
            request_id="r3",
            attempt=1,
            amount=Resources(cpu_m=100),
        ),
        "res-1",
        expect_seq=0,
        expect_scope=node_history("c.1", "n1"),
    )
    seqs = await store.append_batch([conditional("r3", 0, "a", "c-1"), node])
    assert seqs[1] == seqs[0] + 1
    stale_node = Append(
        node.subject, node.event, "res-2", expect_seq=0, expect_scope=node.expect_scope
    )
    with pytest.raises(ConflictError):
        await store.append_batch([conditional("r4", 0, "a", "c-2"), stale_node])
    # The request half of the refused batch was not stored either.
    assert await store.last(request_history("r4")) is None
