"""Follow request events live and keep per-request progress (for the demo and the benchmark)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_REQUEST_EVENTS, request_id_of
from gsch.eventstore.watch import Follower
from gsch.model.events import (
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestRejected,
)
from gsch.model.states import STATE_AFTER

SETTLED = frozenset({"bound", "failed", "rejected", "cancelled"})


@dataclass
class Progress:
    state: str
    scheduled_at: float | None = None
    bound_at: float | None = None
    policy: str | None = None
    form: str | None = None


class RequestTracker:
    def __init__(self, store: EventStore, subject: str = ALL_REQUEST_EVENTS) -> None:
        """Follow `subject` (all request events, or e.g. only commits for the benchmark,
        which should load the server no more than it must)."""
        self.requests: dict[str, Progress] = {}
        self._follower = Follower(store, subject, self._apply)

    def _apply(self, stored: StoredEvent) -> None:
        event = stored.event
        after = STATE_AFTER.get(type(event))
        if after is None:
            return
        state = after.value
        request_id = request_id_of(stored.subject)
        progress = self.requests.get(request_id)
        if progress is None:
            progress = self.requests[request_id] = Progress(state)
        if progress.state in SETTLED and state not in ("bound",):
            # Finals stay final; a late binding event cannot un-fail a request.
            return
        progress.state = state
        if isinstance(event, RequestAccepted):
            progress.policy, progress.form = event.request.policy.value, event.request.form
        elif isinstance(event, RequestRejected):
            progress.form = event.form
        elif isinstance(event, PlacementCommitted) and progress.scheduled_at is None:
            progress.scheduled_at = event.at
        elif isinstance(event, RequestBound):
            progress.bound_at = event.at

    async def start(self, after_seq: int = 0) -> None:
        await self._follower.start(after_seq)

    async def stop(self) -> None:
        await self._follower.stop()

    def counts(self) -> Counter[str]:
        return Counter(p.state for p in self.requests.values())

    def settled(self, request_ids: set[str]) -> int:
        return sum(
            1 for r in request_ids if (p := self.requests.get(r)) is not None and p.state in SETTLED
        )
