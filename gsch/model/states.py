"""The request lifecycle: its states, the one rule that moves a request between them, and the
request aggregate folded by that rule.

Every fold of request events takes its state from `step` here: the aggregate below, the read
model's row, the demo's and the benchmark's tracker, the watch feed and the submit route. So
`gsch audit`, the API and the demo summary cannot disagree about what state a request is in.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

import msgspec

from gsch.model.events import (
    REQUEST_EVENTS,
    AnyEvent,
    CancelRecorded,
    Event,
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
    event_type,
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


# Nothing leaves these. `bound` is settled (the request reached an end) but not final: a bound
# request can still be cancelled, which removes its workload (DESIGN.md §3).
FINAL_STATES = frozenset({State.FAILED, State.CANCELLED, State.REJECTED})
SETTLED_STATES = FINAL_STATES | {State.BOUND}

# The state each kind of event moves a live request into, by the event's type as the log
# names it (the read model and the watch feed see only that name). WorkloadFinished is absent:
# the workload ending changes no state.
_ENTERS = MappingProxyType({
    RequestAccepted.__name__: State.QUEUED,
    RequestRejected.__name__: State.REJECTED,
    RequestClaimed.__name__: State.SCHEDULING,
    PlacementCommitted.__name__: State.SCHEDULED,
    RequestRequeued.__name__: State.QUEUED,
    RequestFailed.__name__: State.FAILED,
    RequestBound.__name__: State.BOUND,
    RequestCancelled.__name__: State.CANCELLED,
})  # fmt: skip


def entered_by(kind: str) -> State | None:
    """The state an event of type `kind` moves a request into, unless the request is final
    already; None for an event that moves no request. For readers that see an event without
    the request's state before it (the watch feed); a fold uses `step`."""
    return _ENTERS.get(kind)


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """What one event changes in the facts every fold of a request keeps; None: unchanged."""

    state: State
    attempt: int | None = None
    placements: tuple[Placement, ...] | None = None
    reason: str | None = None
    reason_field: str | None = None  # the request field `reason` is about, for a rejection
    explanation: Explanation | None = None
    not_before: float | None = None
    blocked: bool = False  # a requeue that waits for capacity; any later event ends that
    finished: bool = False


def step(before: State, event: Event) -> Step | None:
    """The lifecycle rule: what `event` does to a request in state `before`; None when it
    changes nothing.

    That is so for an event that is no request event (a cluster event on a request subject),
    and for every event after a final state: nothing leaves failed, cancelled or rejected, so
    a late report (a binding that raced a cancel) cannot revive a request. Appends are
    conditional on the request's history, so a correct log never holds such an event; the
    rule says what one would mean. `bound` is not final: bound → cancelled is a transition.
    """
    if before in FINAL_STATES or not isinstance(event, REQUEST_EVENTS):
        return None
    state = _ENTERS.get(event_type(event), before)
    match event:
        case RequestAccepted():
            return Step(state=state, attempt=1)
        case RequestRejected():
            return Step(state=state, reason=event.reason, reason_field=event.field)
        case RequestClaimed():
            return Step(state=state, attempt=event.attempt)
        case PlacementCommitted():
            return Step(state=state, placements=event.placements, explanation=event.explanation)
        case RequestRequeued():
            return Step(
                state=state,
                attempt=event.attempt,
                placements=(),
                reason=event.reason,
                explanation=event.explanation,
                not_before=event.not_before,
                blocked=event.blocked,
            )
        case RequestFailed():
            reason = event.reasons[-1] if event.reasons else "failed"
            return Step(state=state, reason=reason, explanation=event.explanation)
        case RequestBound():
            return Step(state=state, placements=event.placements)
        case WorkloadFinished():
            return Step(state=state, finished=True)
        case RequestCancelled():
            return Step(state=state, placements=(), reason=event.reason)
        case _:
            return Step(state=state)


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
    digest: str = ""  # of the body it was accepted or rejected from
    # A cancel recorded before the request arrived (CancelRecorded): when, and why.
    cancel_recorded_at: float | None = None
    cancel_reason: str = ""

    def apply(self, event: AnyEvent, seq: int) -> None:
        """Fold one event of this request into the state (events arrive in stream order)."""
        self.last_seq = seq  # whatever the event: the history's position for conditional appends
        if isinstance(event, CancelRecorded):
            # Not a lifecycle step: the request is still unknown, only a cancel awaits it.
            self.cancel_recorded_at, self.cancel_reason = event.at, event.reason
            return
        change = step(self.state, event)
        if change is None:
            return
        self.state = change.state
        if change.attempt is not None:
            self.attempt = change.attempt
        if change.placements is not None:
            self.placements = change.placements
        if change.reason is not None:
            self.reasons.append(change.reason)
        if change.explanation is not None:
            self.explanation = change.explanation
        if change.not_before is not None:
            self.not_before = change.not_before
        self.finished = self.finished or change.finished
        # What only the aggregate keeps: the request, its queue positions and its claim.
        match event:
            case RequestAccepted():
                self.request = event.request
                self.intake_seq = event.intake_seq
                self.accepted_seq = self.queued_seq = seq
                self.accepted_at = event.at
                self.digest = event.digest
            case RequestRejected():
                self.intake_seq = event.intake_seq
                self.digest = event.digest
            case RequestClaimed():
                self.claimed_by = event.worker
            case RequestRequeued():
                self.queued_seq = seq
                self.claimed_by = None
                self.avoid_clusters = event.avoid_clusters
            case _:
                pass
