"""Check the invariants of DESIGN.md §2 from the event log alone.

Replays every event in stream order and reports: requests that did not settle, requests
placed twice at once, and nodes whose reservations exceeded what they could hold at the
moment of a reservation. Used by the fault tests, the benchmark, and `gsch audit`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_EVENTS
from gsch.model.events import CapacityReserved, PlacementCommitted, RequestClaimed
from gsch.model.states import FINAL_STATES, SETTLED_STATES, RequestState, State


@dataclass
class AuditReport:
    last_seq: int = 0
    requests: dict[str, RequestState] = field(default_factory=dict)
    double_placements: list[str] = field(default_factory=list)
    overcommits: list[str] = field(default_factory=list)
    duplicate_reservations: list[str] = field(default_factory=list)
    # Capacity still reserved at the end for requests that are final (failed, cancelled,
    # rejected) or whose workload finished: released capacity that was never given back.
    leaked_reservations: list[str] = field(default_factory=list)
    # Workers that claimed or committed each request, in order: a new name after another
    # means a lease was taken over.
    owners: dict[str, list[str]] = field(default_factory=dict)

    @property
    def states(self) -> Counter[str]:
        return Counter(state.state.value for state in self.requests.values())

    @property
    def unsettled(self) -> list[str]:
        return sorted(r for r, s in self.requests.items() if s.state not in SETTLED_STATES)

    @property
    def ok(self) -> bool:
        return not (
            self.unsettled
            or self.double_placements
            or self.overcommits
            or self.duplicate_reservations
            or self.leaked_reservations
        )

    def summary(self) -> str:
        states = ", ".join(f"{k}={v}" for k, v in sorted(self.states.items()))
        return (
            f"{len(self.requests)} requests ({states}); unsettled={len(self.unsettled)} "
            f"double placements={len(self.double_placements)} "
            f"overcommits={len(self.overcommits)} "
            f"duplicate reservations={len(self.duplicate_reservations)} "
            f"leaked reservations={len(self.leaked_reservations)} "
            f"(log up to seq {self.last_seq})"
        )


class _Auditor:
    def __init__(self) -> None:
        self.report = AuditReport()
        self.snapshot = ClusterSnapshot()

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        self.report.last_seq = stored.seq
        request_id = stored.request_id
        if request_id is not None:
            state = self.report.requests.get(request_id)
            if state is None:
                state = self.report.requests[request_id] = RequestState(request_id=request_id)
            if isinstance(event, PlacementCommitted) and state.state in (
                State.SCHEDULED,
                State.BOUND,
            ):
                self.report.double_placements.append(f"{request_id} at seq {stored.seq}")
            if isinstance(event, RequestClaimed | PlacementCommitted):
                self.report.owners.setdefault(request_id, []).append(event.worker)
            state.apply(event, stored.seq)
            return
        if isinstance(event, CapacityReserved):
            node = self.snapshot.cluster(event.cluster).node(event.node)
            where = f"{event.cluster}/{event.node} at seq {stored.seq}"
            if event.request_id in node.reservations:
                self.report.duplicate_reservations.append(f"{event.request_id} on {where}")
            elif not event.amount.fits_in(node.free):
                self.report.overcommits.append(
                    f"{where}: {event.request_id} needs {event.amount}, free {node.free}"
                )
        self.snapshot.apply(event, stored.seq)

    def finish(self) -> AuditReport:
        for cluster in self.snapshot.clusters.values():
            for node in cluster.nodes.values():
                for request_id in node.reservations:
                    state = self.report.requests.get(request_id)
                    if state is not None and (state.state in FINAL_STATES or state.finished):
                        self.report.leaked_reservations.append(
                            f"{request_id} ({state.state.value}) on {cluster.name}/{node.name}"
                        )
        return self.report


async def audit(store: EventStore, timeout: float = 120.0) -> AuditReport:
    auditor = _Auditor()
    last = await store.last_seq()
    follower = store.follow(ALL_EVENTS, auditor.apply)
    await follower.start()
    try:
        async with asyncio.timeout(timeout):
            while auditor.report.last_seq < last:
                await asyncio.sleep(0.01)
    finally:
        await follower.stop()
    return auditor.finish()
