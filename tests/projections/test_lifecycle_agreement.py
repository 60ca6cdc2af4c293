"""Every reader of the log tells the same lifecycle: the demo's tracker, `gsch audit` and the
read model count the same states for one scripted history, against a real nats-server."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from gsch.audit import audit
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import node_subject, request_subject
from gsch.model.events import (
    CapacityReleased,
    Placement,
    RequestBound,
    RequestCancelled,
    RequestFailed,
)
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModel
from gsch.tools.observe import RequestTracker
from tests.support.scenario import SMALL, Log, running

EXPECTED = {"bound": 1, "cancelled": 2, "queued": 1, "failed": 1, "rejected": 1}


async def cancel(log: Log, rid: str, cluster: str, node: str) -> int:
    """Cancel a request that holds a placement, releasing it in the same batch as cancel does."""
    at = log.at()
    cancelled = RequestCancelled(
        at=at,
        attempt=1,
        reason="cancelled by the user",
        placements=(Placement(cluster, node, SMALL),),
    )
    released = CapacityReleased(
        at=at, cluster=cluster, node=node, request_id=rid, attempt=1, reason="cancelled"
    )
    return await log.batch(
        (request_subject(rid, "RequestCancelled"), cancelled),
        (node_subject(cluster, node, "CapacityReleased"), released),
    )


async def write_history(log: Log) -> tuple[list[str], int]:
    """One request in each outcome, including the ones the trackers used to disagree on."""
    await log.cluster("c1", "edge")
    await log.node("c1", "n1")
    for rid in ("bound", "bound-then-cancelled", "requeued", "failed", "late-binding"):
        await log.accept(rid)
        await log.claim(rid)
    for rid in ("bound", "bound-then-cancelled", "requeued", "late-binding"):
        await log.commit(rid, "c1", "n1")
    await log.bind("bound", "c1", "n1")
    # Bound, then cancelled: its workload is removed, so it counts as cancelled, not bound.
    await log.bind("bound-then-cancelled", "c1", "n1")
    await cancel(log, "bound-then-cancelled", "c1", "n1")
    await log.requeue("requeued", "c1", "n1", 2, "binding failed: timeout")
    failed = RequestFailed(at=log.at(), attempt=1, reasons=("attempt 1: no room",))
    await log.append(request_subject("failed", "RequestFailed"), failed)
    await log.reject("rejected", "policy: unknown policy 'GFastest'", "policy")
    # Cancelled, then a binding reported that raced the cancel (written unconditionally here;
    # gsch's own appends are conditional and never write it): nothing leaves a final state.
    await cancel(log, "late-binding", "c1", "n1")
    late = RequestBound(at=log.at(), attempt=1, placements=(Placement("c1", "n1", SMALL),))
    last = await log.append(request_subject("late-binding", "RequestBound"), late)
    ids = ["bound", "bound-then-cancelled", "requeued", "failed", "rejected", "late-binding"]
    return ids, last


async def read_model_states(db_path: Path, stream: str, ids: list[str]) -> Counter[str]:
    reader = ReadModel(db_path, stream)
    try:
        async with reader.snapshot() as snapshot:
            details = [await snapshot.request(rid) for rid in ids]
    finally:
        await reader.close()
    return Counter(detail.state for detail in details if detail is not None)


async def test_tracker_audit_and_read_model_count_the_same_states(
    store: EventStore, tmp_path: Path
) -> None:
    ids, last = await write_history(Log(store))
    tracker = RequestTracker(store)
    await tracker.start()
    try:
        async with asyncio.timeout(10):
            while tracker.last_seq < last:
                await asyncio.sleep(0.01)
    finally:
        await tracker.stop()
    report = await audit(store, timeout=10)
    db_path = tmp_path / "model.sqlite"
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
    projected = await read_model_states(db_path, store.stream, ids)

    assert dict(report.states) == EXPECTED
    assert {str(state): n for state, n in tracker.counts().items()} == EXPECTED
    assert dict(projected) == EXPECTED
    assert tracker.requests["bound-then-cancelled"].bound_at is not None  # it was bound once
    assert tracker.settled(set(ids)) == len(ids) - 1  # all but the requeued one
    assert report.unsettled == ["requeued"]
