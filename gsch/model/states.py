"""The request aggregate: its lifecycle state folded from its events."""

from __future__ import annotations

import enum

import msgspec

from gsch.model.events import (
    AnyEvent,
    Explanation,
    Placement,
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestCancelled,
    RequestClaimed,
    RequestFailed,
    RequestRejected,
    RequestRequeued,
    WorkloadFinished,
)
from gsch.model.request import Request


class State(enum.StrEnum):
    NEW = "new"  # nothing in the log yet
    QUEUED = "queued"
    SCHEDULING = "scheduling"
    SCHEDULED = "scheduled"
    BOUND = "bound"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


# The lifecycle in one table: the state a request is in after each kind of event. Every fold
# of request events (the aggregate below, the read model, progress trackers) takes it from here.
STATE_AFTER: dict[type, State] = {
    RequestAccepted: State.QUEUED,
    RequestRejected: State.REJECTED,
    RequestClaimed: State.SCHEDULING,
    PlacementCommitted: State.SCHEDULED,
    RequestRequeued: State.QUEUED,
    RequestFailed: State.FAILED,
    RequestBound: State.BOUND,
    RequestCancelled: State.CANCELLED,
}

FINAL_STATES = frozenset({State.FAILED, State.CANCELLED, State.REJECTED})
SETTLED_STATES = FINAL_STATES | {State.BOUND}


class RequestState(msgspec.Struct, kw_only=True):
    request_id: str
    state: State = State.NEW
    request: Request | None = None
    intake_seq: int = 0
    accepted_seq: int = 0
    queued_seq: int = 0  # the event that put the request in the queue (its work item)
    accepted_at: float = 0.0
    attempt: int = 0
    claimed_by: str | None = None
    placements: tuple[Placement, ...] = ()
    reasons: list[str] = msgspec.field(default_factory=list)
    explanation: Explanation | None = None
    not_before: float = 0.0
    avoid_clusters: tuple[str, ...] = ()  # refused the last binding: place elsewhere if possible
    finished: bool = False
    last_seq: int = 0

    def apply(self, event: AnyEvent, seq: int) -> None:
        """Fold one event of this request into the state (events arrive in stream order)."""
        self.last_seq = seq
        self.state = STATE_AFTER.get(type(event), self.state)
        match event:
            case RequestAccepted():
                self.request = event.request
                self.intake_seq = event.intake_seq
                self.accepted_seq = self.queued_seq = seq
                self.accepted_at = event.at
                self.attempt = 1
            case RequestRejected():
                self.intake_seq = event.intake_seq
                self.reasons.append(event.reason)
            case RequestClaimed():
                self.attempt = event.attempt
                self.claimed_by = event.worker
            case PlacementCommitted():
                self.placements = event.placements
                self.explanation = event.explanation
            case RequestRequeued():
                self.queued_seq = seq
                self.attempt = event.attempt
                self.claimed_by = None
                self.placements = ()
                self.not_before = event.not_before
                self.avoid_clusters = event.avoid_clusters
                self.reasons.append(event.reason)
                if event.explanation is not None:
                    self.explanation = event.explanation
            case RequestFailed():
                self.reasons.append(event.reasons[-1] if event.reasons else "failed")
                if event.explanation is not None:
                    self.explanation = event.explanation
            case RequestBound():
                self.placements = event.placements
            case WorkloadFinished():
                self.finished = True
            case RequestCancelled():
                self.placements = ()
                self.reasons.append(event.reason)
            case _:
                pass
