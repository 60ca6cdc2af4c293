"""Follow request events live and keep per-request progress (for the demo and the benchmark)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import ALL_REQUEST_EVENTS
from gsch.eventstore.watch import Follower
from gsch.model.events import (
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestRejected,
)
from gsch.model.states import SETTLED_STATES, State, step


@dataclass
class Progress:
    state: State
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
        request_id = stored.request_id
        if request_id is None:
            return
        progress = self.requests.get(request_id)
        # The rule the aggregate folds by, so these counts are `gsch audit`'s: a request bound
        # and then cancelled counts as cancelled, and nothing leaves a final state.
        change = step(progress.state if progress is not None else State.NEW, event)
        if change is None:
            return
        if progress is None:
            progress = self.requests[request_id] = Progress(change.state)
        progress.state = change.state
        if isinstance(event, RequestAccepted):
            progress.policy, progress.form = event.request.policy.value, event.request.form
        elif isinstance(event, RequestRejected):
            progress.form = event.form
        elif isinstance(event, PlacementCommitted) and progress.scheduled_at is None:
            progress.scheduled_at = event.at
        elif isinstance(event, RequestBound):
            progress.bound_at = event.at

    @property
    def last_seq(self) -> int:
        """The stream sequence of the last event the tracker has read."""
        return self._follower.last_seq

    async def start(self, after_seq: int = 0) -> None:
        await self._follower.start(after_seq)

    async def stop(self) -> None:
        await self._follower.stop()

    def counts(self) -> Counter[State]:
        return Counter(p.state for p in self.requests.values())

    def settled(self, request_ids: set[str]) -> int:
        return sum(
            1
            for r in request_ids
            if (p := self.requests.get(r)) is not None and p.state in SETTLED_STATES
        )
