"""Commit intents between workers on a real nats-server: what one worker's batch is about to
reserve counts on the other's snapshot until it is answered; a worker ignores its own; bad
messages are ignored and counted; a forged intent holds a decision back for a bounded time
and never decides it (the decision lands, conditional as ever, and the forgery never does)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import nats
import pytest
from nats.aio.client import Client

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.appends import Append, Write
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import NodeKey, RequestKey, node_history
from gsch.metrics import COMMITS_HELD, INTENTS_IGNORED
from gsch.model.events import CapacityReserved, RequestClaimed
from gsch.model.resources import Resources
from gsch.runtime.embedded import EmbeddedNats
from gsch.scheduler.intent_bus import MAX_INTENT_BYTES, CommitIntents
from tests.support.planning import cluster, node, snapshot_of
from tests.support.waits import eventually

CPU = Resources(cpu_m=500, pods=1)
FORGER = "gsch.intents.forger"


def fleet() -> ClusterSnapshot:
    return snapshot_of([cluster("c1"), node("c1", "n1"), node("c1", "n2")])


def reservation(request_id: str, where: str, amount: Resources = CPU) -> Write:
    event = CapacityReserved(
        at=1.0, cluster="c1", node=where, request_id=request_id, attempt=1, amount=amount
    )
    return Write(NodeKey("c1", where), (event,), expect=0, origin=request_id)


def pending_cpu(snapshot: ClusterSnapshot, where: str = "n1") -> int:
    return snapshot.clusters["c1"].nodes[where].pending.cpu_m


def counted(metric_value: object) -> float:
    return float(metric_value._value.get())  # type: ignore[attr-defined]


@asynccontextmanager
async def worker_intents(url: str, name: str, expiry: float = 1.0) -> AsyncIterator[CommitIntents]:
    client = await nats.connect(url)
    intents = CommitIntents(client, fleet(), name, expiry=expiry)
    await intents.start()
    try:
        yield intents
    finally:
        await intents.stop()
        await client.close()


def intent_body(group: int, reservations: Sequence[Sequence[object]]) -> bytes:
    return json.dumps({"t": "intent", "group": group, "reservations": reservations}).encode()


async def test_a_batch_in_flight_counts_on_the_other_worker_until_it_is_answered(
    nats_server: EmbeddedNats,
) -> None:
    async with (
        worker_intents(nats_server.url, "a") as a,
        worker_intents(nats_server.url, "b") as b,
    ):
        items = reservation("r1", "n1").appends()
        token = await a.announce(items)
        assert token is not None
        await eventually(lambda: pending_cpu(b.table._snapshot) == 500, 5)
        assert b.contested(reservation("mine", "n1").appends())
        assert not b.contested(reservation("mine", "n2").appends())
        await a.answered(token, landed=False)
        await eventually(lambda: pending_cpu(b.table._snapshot) == 0, 5)
        assert not b.contested(reservation("mine", "n1").appends())
        # A worker's own intents never count on its own snapshot (it assumes them itself).
        assert pending_cpu(a.table._snapshot) == 0
        assert len(a.table) == 0
        # Nothing to tell about a batch that reserves nothing.
        assert await a.announce([]) is None


async def test_bad_intents_are_ignored_and_counted_and_the_next_good_one_counts(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    async with worker_intents(nats_server.url, "b") as b:
        malformed = counted(INTENTS_IGNORED.labels(reason="malformed"))
        too_large = counted(INTENTS_IGNORED.labels(reason="too_large"))
        for body in (
            b"not json",
            b'{"t": "promise", "group": 1}',
            intent_body(2, [["r", "c1", "n1", -4000, 0, 0, 0]]),  # would free room: never
            intent_body(3, [["r", "c1", "n1", 1]]),  # a reservation cut short
            intent_body(4, [[f"r{i}", "c1", "n1", 1, 0, 0, 0] for i in range(501)]),
            intent_body(5, [["r" * 300, "c1", "n1", 1, 0, 0, 0]]),
        ):
            await nc.publish(FORGER, body)
        await nc.publish(FORGER, b" " * (MAX_INTENT_BYTES + 1))
        await nc.publish(FORGER, intent_body(6, [["ok", "c1", "n2", 250, 0, 0, 1]]))
        await eventually(lambda: pending_cpu(b.table._snapshot, "n2") == 250, 5)
        assert counted(INTENTS_IGNORED.labels(reason="malformed")) == malformed + 6
        assert counted(INTENTS_IGNORED.labels(reason="too_large")) == too_large + 1
        assert pending_cpu(b.table._snapshot, "n1") == 0


class SameView:
    """A writer's view with nothing newer: a held decision goes out as it was checked."""

    async def catch_up(self, seq: int | None = None) -> None:
        pass

    def rebase(self, item: Append) -> Append | None:
        return item


def decision(request_id: str, where: str) -> list[Write]:
    claimed = RequestClaimed(at=1.0, worker="w", attempt=1)
    return [Write(RequestKey(request_id), (claimed,), expect=0), reservation(request_id, where)]


@pytest.mark.parametrize("settled_by", ["expiry", "refusal", "hold_limit"])
async def test_a_forged_intent_only_delays_a_decision_which_lands_as_checked(
    nats_server: EmbeddedNats, nc: Client, store: EventStore, settled_by: str
) -> None:
    """A forged intent takes the whole node: the decision on it is held back (not sent into
    the refusal the intent announces) until the forgery expires, is answered refused, or
    (neither coming) the hold reaches its bound; then it lands conditional on the node's
    history as it checked it. The forgery itself never reaches the log."""
    expiry = 0.3 if settled_by == "expiry" else 60.0
    intents = CommitIntents(nc, fleet(), "w", expiry=expiry)
    await intents.start()
    store.announce_commits(intents)
    try:
        whole = ["forged", "c1", "n1", 4000, 8 * 2**30, 0, 110]
        await nc.publish(FORGER, intent_body(1, [whole]))
        await eventually(lambda: intents.table.contested("c1", "n1"), 5)
        held = counted(COMMITS_HELD)
        landing = asyncio.create_task(store.append(*decision("real", "n1"), revalidator=SameView()))
        await eventually(lambda: counted(COMMITS_HELD) == held + 1, 5)
        await asyncio.sleep(0.05)
        assert not landing.done()  # held, not refused
        if settled_by == "refusal":
            await nc.publish(
                FORGER, json.dumps({"t": "done", "group": 1, "landed": False}).encode()
            )
        sequences = await asyncio.wait_for(landing, 10)
        assert len(sequences) == 2
        node_events = await store.read(node_history("c1", "n1"))
        assert [e.event.request_id for e in node_events] == ["real"]  # type: ignore[union-attr]
        # The forgery counts until it is settled, and then not at all.
        left = 1 if settled_by == "hold_limit" else 0
        assert len(intents.table) == left
        assert pending_cpu(intents.table._snapshot) == 4000 * left
    finally:
        await intents.stop()
