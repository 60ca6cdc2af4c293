"""The intent table: another worker's announced reservations count as pending on this worker's
snapshot exactly once, and stop counting exactly once (folded from the log, refused, expired),
never twice with the log and never below what the log says."""

from __future__ import annotations

import asyncio

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.metrics import INTENTS_SETTLED
from gsch.model.events import CapacityReserved, Placement
from gsch.model.resources import Resources
from gsch.scheduler.intents import IntentTable
from tests.support.planning import cluster, node, snapshot_of

CPU = Resources(cpu_m=500, pods=1)
OTHER = ("other-worker", 1)


def fleet() -> ClusterSnapshot:
    return snapshot_of([cluster("c1"), node("c1", "n1"), node("c1", "n2")])


def intent(request_id: str, where: str = "n1", amount: Resources = CPU) -> tuple[str, Placement]:
    return (request_id, Placement("c1", where, amount))


def reserved(request_id: str, where: str = "n1", amount: Resources = CPU) -> CapacityReserved:
    return CapacityReserved(
        at=1.0, cluster="c1", node=where, request_id=request_id, attempt=1, amount=amount
    )


def free_cpu(snapshot: ClusterSnapshot, where: str = "n1") -> int:
    return snapshot.clusters["c1"].nodes[where].free.cpu_m


def settled(how: str) -> float:
    return INTENTS_SETTLED.labels(how=how)._value.get()


async def test_an_intent_counts_once_until_its_reservation_is_folded_then_the_log_counts_it() -> (
    None
):
    snapshot = fleet()
    table = IntentTable(snapshot)
    assert table.announced(OTHER, [intent("r1"), intent("r1")]) == 1  # named twice: once
    assert table.announced(OTHER, [intent("r1")]) == 0  # the same batch again: nothing more
    assert free_cpu(snapshot) == 3500
    assert table.contested("c1", "n1")
    assert not table.contested("c1", "n2")
    folded_before = settled("folded")
    snapshot.apply(reserved("r1"), 10)
    # Counted by the log now, no longer by the intent: 500 taken once, not twice.
    assert free_cpu(snapshot) == 3500
    assert snapshot.clusters["c1"].nodes["n1"].pending == Resources()
    assert not table.contested("c1", "n1")
    assert len(table) == 0
    assert settled("folded") == folded_before + 1
    # Its answer, and its expiry, come after: nothing is given back a second time.
    table.answered(OTHER, landed=True)
    table.answered(OTHER, landed=False)
    await asyncio.sleep(0)
    assert free_cpu(snapshot) == 3500
    table.close()


async def test_an_intent_arriving_after_its_fold_is_not_counted() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot)
    snapshot.apply(reserved("r1"), 10)
    assert table.announced(OTHER, [intent("r1")]) == 0
    assert free_cpu(snapshot) == 3500
    assert not table.contested("c1", "n1")


async def test_a_refused_batch_counts_until_sent_again_a_landed_one_until_its_fold() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot, refused_grace=0.05)
    refused_before = settled("refused")
    table.announced(("w", 1), [intent("a", "n1"), intent("stale", "n2")])
    table.answered(("w", 1), landed=False)
    # The sender sends the refused batch's decisions again at once, all but the stale one:
    # the room they take counts throughout, held decisions are not let go into that race.
    assert free_cpu(snapshot, "n1") == 3500
    table.announced(("w", 2), [intent("a", "n1")])
    await asyncio.sleep(0.1)
    assert free_cpu(snapshot, "n1") == 3500
    assert table.contested("c1", "n1")
    assert free_cpu(snapshot, "n2") == 4000  # not sent again: no longer counted
    assert not table.contested("c1", "n2")
    assert settled("refused") == refused_before + 1
    # Landed but not folded yet: dropping it now would leave the room counted by no one.
    table.answered(("w", 2), landed=True)
    await asyncio.sleep(0.1)
    assert free_cpu(snapshot, "n1") == 3500
    assert table.contested("c1", "n1")
    snapshot.apply(reserved("a", "n1"), 11)
    assert free_cpu(snapshot, "n1") == 3500
    assert not table.contested("c1", "n1")
    assert len(table) == 0


async def test_an_unanswered_intent_expires_once() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot, expiry=0.05)
    expired_before = settled("expired")
    woken: list[int] = []
    table.settle_listeners.append(lambda: woken.append(1))
    table.announced(OTHER, [intent("r1", "n1"), intent("r2", "n2")])
    assert free_cpu(snapshot, "n1") == 3500
    assert free_cpu(snapshot, "n2") == 3500
    await asyncio.sleep(0.1)
    assert free_cpu(snapshot, "n1") == 4000
    assert free_cpu(snapshot, "n2") == 4000
    assert len(table) == 0
    assert not table.contested("c1", "n1")
    assert settled("expired") == expired_before + 2
    assert len(woken) == 2  # held decisions are told, once per reservation
    # The reservation folded later is the log's alone.
    snapshot.apply(reserved("r1"), 12)
    assert free_cpu(snapshot, "n1") == 3500


async def test_a_reservation_announced_again_replaces_its_older_intent() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot, refused_grace=0.01)
    table.announced(("w", 1), [intent("r1")])
    table.announced(("w", 2), [intent("r1")])  # resent in a later batch of its sender
    assert free_cpu(snapshot) == 3500
    assert len(table) == 1
    table.answered(("w", 1), landed=False)  # the old batch's answer: nothing of it is left
    await asyncio.sleep(0.03)
    assert free_cpu(snapshot) == 3500
    table.answered(("w", 2), landed=False)
    await asyncio.sleep(0.03)
    assert free_cpu(snapshot) == 4000


async def test_unknown_nodes_and_more_than_the_bound_are_not_counted() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot, max_live=2)
    counted = table.announced(
        OTHER,
        [
            ("x", Placement("nowhere", "n1", CPU)),
            ("y", Placement("c1", "ghost", CPU)),
            *(intent(f"r{i}", "n2") for i in range(5)),
        ],
    )
    assert counted == 2
    assert len(table) == 2
    assert free_cpu(snapshot, "n2") == 3000
    assert "ghost" not in snapshot.clusters["c1"].nodes


async def test_closing_gives_everything_back() -> None:
    snapshot = fleet()
    table = IntentTable(snapshot)
    table.announced(OTHER, [intent("r1"), intent("r2", "n2")])
    table.close()
    assert free_cpu(snapshot, "n1") == 4000
    assert free_cpu(snapshot, "n2") == 4000
    snapshot.apply(reserved("r1"), 10)  # no longer listening: the log alone counts it
    assert free_cpu(snapshot, "n1") == 3500
