"""Check the invariants of DESIGN.md §2 from the event log alone.

Replays every event in stream order and reports: requests that did not settle, requests
placed twice at once, and nodes whose reservations exceeded what they could hold at the
moment of a reservation. Used by the fault tests, the benchmark, and `gsch audit`. A cancel
recorded for an id that never arrived is no request and is not counted.

On a compacted log the cluster state starts from the newest good snapshot (the one a worker
would start from) and only the cluster events after it are replayed; request histories are
replayed whole, except those retention removed (counted, not checked). A reservation that
the end state holds for a request the log does not know is reported: compaction or retention
lost a live fact.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from gsch.clusters.restore import newest_snapshot
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_EVENTS
from gsch.model.events import (
    CapacityReserved,
    PlacementCommitted,
    RequestClaimed,
    RequestIdConflict,
    RequestsExpired,
)
from gsch.model.states import FINAL_STATES, SETTLED_STATES, RequestState, State


@dataclass
class AuditReport:
    first_seq: int = 0  # the log's first and last sequence when the audit began
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
    # Messages refused for reusing a request id with another body (not violations).
    id_conflicts: int = 0
    # Capacity the end state holds for a request the log has no history of.
    orphan_reservations: list[str] = field(default_factory=list)
    # What was checked: the snapshot the cluster state started from (0: the log's
    # beginning), the events replayed, and the requests retention removed.
    snapshot_seq: int = 0
    snapshot_slot: str | None = None
    events_replayed: int = 0
    expired_requests: int = 0

    @property
    def states(self) -> Counter[str]:
        return Counter(state.state.value for state in self.requests.values())

    @property
    def unsettled(self) -> list[str]:
        return sorted(r for r, s in self.requests.items() if s.state not in SETTLED_STATES)

    def unsettled_older_than(self, seconds: float, now: float | None = None) -> list[str]:
        """Unsettled requests accepted more than `seconds` ago: stuck, not just in progress."""
        cutoff = (now if now is not None else time.time()) - seconds
        return [r for r in self.unsettled if self.requests[r].accepted_at < cutoff]

    def violations(self, unsettled_after: float | None) -> list[tuple[str, list[str]]]:
        """What breaks an invariant, by kind; unsettled requests count once older than
        `unsettled_after` seconds (None: every unsettled request counts)."""
        if unsettled_after is None:
            stuck = self.unsettled
        else:
            stuck = self.unsettled_older_than(unsettled_after)
        return [
            (title, items)
            for title, items in (
                ("unsettled", stuck),
                ("placed twice", self.double_placements),
                ("overcommitted", self.overcommits),
                ("reserved twice", self.duplicate_reservations),
                ("still reserved", self.leaked_reservations),
                ("reserved for no known request", self.orphan_reservations),
            )
            if items
        ]

    @property
    def ok(self) -> bool:
        return not (
            self.unsettled
            or self.double_placements
            or self.overcommits
            or self.duplicate_reservations
            or self.leaked_reservations
            or self.orphan_reservations
        )

    def summary(self) -> str:
        states = ", ".join(f"{k}={v}" for k, v in sorted(self.states.items()))
        return (
            f"{len(self.requests)} requests ({states}); unsettled={len(self.unsettled)} "
            f"double placements={len(self.double_placements)} "
            f"overcommits={len(self.overcommits)} "
            f"duplicate reservations={len(self.duplicate_reservations)} "
            f"leaked reservations={len(self.leaked_reservations)} "
            f"orphan reservations={len(self.orphan_reservations)} "
            f"id conflicts refused={self.id_conflicts} "
            f"(log from seq {self.first_seq} to {self.last_seq})"
        )

    def checked(self) -> str:
        """What this audit looked at, in words."""
        start = (
            f"cluster state from snapshot {self.snapshot_slot} at seq {self.snapshot_seq}"
            " + the cluster events after it"
            if self.snapshot_seq
            else "cluster state replayed from the log's first event"
        )
        return (
            f"checked: {start}; {self.events_replayed} events replayed up to seq"
            f" {self.last_seq}; {len(self.requests)} request histories; "
            f"{self.expired_requests} finished requests removed by retention (not checked)"
        )


class _Auditor:
    def __init__(self, snapshot: ClusterSnapshot | None = None, from_seq: int = 0) -> None:
        self.report = AuditReport(snapshot_seq=from_seq)
        self.snapshot = snapshot or ClusterSnapshot()
        self.from_seq = from_seq

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        self.report.last_seq = stored.seq
        self.report.events_replayed += 1
        if isinstance(event, RequestsExpired):
            self.report.expired_requests += len(event.requests)
            return
        request_id = stored.request_id
        if isinstance(event, RequestIdConflict):
            self.report.id_conflicts += 1
            return
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
        if stored.seq <= self.from_seq:
            return  # folded into the snapshot already (what compaction kept of it)
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
        # Histories that hold no request (only a cancel that awaited one) are not requests.
        requests = self.report.requests
        for request_id in [r for r, s in requests.items() if s.state is State.NEW]:
            del requests[request_id]
        for cluster in self.snapshot.clusters.values():
            for node in cluster.nodes.values():
                for request_id in node.reservations:
                    state = self.report.requests.get(request_id)
                    if state is None:
                        self.report.orphan_reservations.append(
                            f"{request_id} (no history in the log) on {cluster.name}/{node.name}"
                        )
                    elif state.state in FINAL_STATES or state.finished:
                        self.report.leaked_reservations.append(
                            f"{request_id} ({state.state.value}) on {cluster.name}/{node.name}"
                        )
        return self.report


async def audit(
    store: EventStore, timeout: float = 120.0, snapshots: SnapshotStore | None = None
) -> AuditReport:
    """Audit the log: from its first event, or once it has been compacted, from the newest
    good snapshot (the one a worker starts from)."""
    auditor = _Auditor()
    snapshots = snapshots or SnapshotStore(store.nc)
    if await snapshots.exists() and await snapshots.watermark() > 0:
        restored = await newest_snapshot(snapshots)
        auditor = _Auditor(restored.snapshot, restored.seq)
        auditor.report.snapshot_slot = restored.slot
    info = await store.js.stream_info(store.stream)
    auditor.report.first_seq = int(info.state.first_seq)
    last = await store.newest_seq()
    follower = store.follow(ALL_EVENTS, auditor.apply)
    await follower.start()
    try:
        async with asyncio.timeout(timeout):
            while auditor.report.last_seq < last:
                await asyncio.sleep(0.01)
    finally:
        await follower.stop()
    return auditor.finish()
