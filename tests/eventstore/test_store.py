"""The event store against a real nats-server: conditional appends, atomic batches, read-back."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from gsch.eventstore.appends import TRANSIENT, Append, Rejected
from gsch.eventstore.store import ConflictError, EventStore, Write
from gsch.eventstore.subjects import NodeKey, RequestKey, node_history, request_history
from gsch.model.events import CapacityReserved, RequestClaimed
from gsch.model.resources import Resources


def claim(worker: str) -> RequestClaimed:
    return RequestClaimed(at=1.0, attempt=1, worker=worker)


def conditional(rid: str, expect: int, worker: str, msg_id: str) -> Write:
    return Write(RequestKey(rid), (claim(worker),), expect=expect, msg_ids=(msg_id,))


async def test_only_one_of_two_creates_wins(store: EventStore) -> None:
    (first,) = await store.append(conditional("r1", 0, "a", "m-a"))
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
    reserved = CapacityReserved(
        at=1.0,
        cluster="c.1",
        node="n1",
        request_id="r3",
        attempt=1,
        amount=Resources(cpu_m=100),
    )
    node = Write(NodeKey("c.1", "n1"), (reserved,), expect=0, msg_ids=("res-1",))
    seqs = await store.append(conditional("r3", 0, "a", "c-1"), node)
    assert seqs[1] == seqs[0] + 1
    assert [e.seq for e in await store.read(node_history("c.1", "n1"))] == [seqs[1]]
    stale_node = Write(NodeKey("c.1", "n1"), (reserved,), expect=0, msg_ids=("res-2",))
    with pytest.raises(ConflictError):
        await store.append(conditional("r4", 0, "a", "c-2"), stale_node)
    # The request half of the refused batch was not stored either.
    assert await store.last(request_history("r4")) is None


async def test_every_appended_event_is_counted_once_by_type(store: EventStore) -> None:
    """The metric is counted where every append goes through, so no writer can miss it."""

    def count(kind: str) -> float:
        return REGISTRY.get_sample_value("gsch_event_appends_total", {"type": kind}) or 0.0

    before = {kind: count(kind) for kind in ("RequestClaimed", "CapacityReserved")}
    reserved = CapacityReserved(
        at=1.0, cluster="c9", node="n9", request_id="r9", attempt=1, amount=Resources(cpu_m=1)
    )
    await store.append(
        conditional("r9", 0, "a", "m-9"), Write(NodeKey("c9", "n9"), (reserved,), expect=0)
    )
    assert count("RequestClaimed") == before["RequestClaimed"] + 1
    assert count("CapacityReserved") == before["CapacityReserved"] + 1
    with pytest.raises(ConflictError):
        await store.append(conditional("r9", 0, "b", "m-10"))
    assert count("RequestClaimed") == before["RequestClaimed"] + 1  # a refused append is not


async def test_a_batch_refused_at_its_first_message_says_why(store: EventStore) -> None:
    """Every message of a batch is sent before its answers are awaited: a batch the server
    refuses (here: a stream that takes no atomic batches) fails with the server's reason,
    neither a timeout nor an unreadable answer, and nothing of it is stored."""
    await store.js.add_stream(name="PLAIN", subjects=["plain.>"])
    plain = EventStore(store.nc, stream="PLAIN", request_timeout=5.0)
    items = [
        Append(subject=f"plain.{index}", event=claim("w"), msg_id=f"plain-{index}")
        for index in range(3)
    ]
    try:
        with pytest.raises(Rejected, match=r"(?i)atomic"):
            await plain.publish_batch(items)
    finally:
        await plain.close()
    assert (await store.js.stream_info("PLAIN")).state.messages == 0


async def test_a_batch_nobody_takes_fails_as_unavailable(store: EventStore) -> None:
    items = [
        Append(subject=f"nowhere.{index}", event=claim("w"), msg_id=f"nowhere-{index}")
        for index in range(2)
    ]
    with pytest.raises(TRANSIENT):
        await store.publish_batch(items)
