"""The request lifecycle's decisions: functions of (state, command) that return events.

Every transition a worker, binder, simulator or cancel makes is decided here, with no I/O: the
caller loads the request's state, asks for the change, and appends it conditional on the
history it loaded (`Change.expect`), so two concurrent deciders exclude each other. The
capacity events of a change are about nodes: reservations are conditional on each node's
history as the planner saw it (the caller supplies those sequences), releases are not (only
the holder releases).
"""

from __future__ import annotations

from dataclasses import dataclass

from gsch.model.events import (
    CancelRecorded,
    CapacityReleased,
    CapacityReserved,
    Event,
    Explanation,
    Placement,
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestCancelled,
    RequestClaimed,
    RequestFailed,
    RequestIdConflict,
    RequestRejected,
    WorkloadFinished,
)
from gsch.model.request import QueueLevel, Request
from gsch.model.retry import RetryPolicy
from gsch.model.states import FINAL_STATES, RequestState, State

SCHEDULABLE = (State.QUEUED, State.SCHEDULING)
_HOLDING_CAPACITY = (State.SCHEDULED, State.BOUND)


@dataclass(frozen=True)
class Change:
    """What one decision appends, all or none: events on the request's own history (the
    first conditional on `expect`, the request's last sequence as the decider read it; 0 for
    a request the log does not know yet), then capacity events on nodes."""

    request_id: str
    expect: int
    events: tuple[Event, ...]
    capacity: tuple[CapacityReserved | CapacityReleased, ...] = ()

    def then(self, *events: Event) -> Change:
        """The same change with more request events after these (e.g. accept, then commit)."""
        return Change(self.request_id, self.expect, (*self.events, *events), self.capacity)

    @property
    def outcome(self) -> Event:
        return self.events[-1]


# --- intake ------------------------------------------------------------------------------


def accept(
    request: Request,
    intake_seq: int,
    level: QueueLevel,
    now: float,
    *,
    digest: str = "",
    expect: int = 0,
) -> Change:
    """A valid request enters the log. Conditional on an empty history (or on the expired
    cancel that is all it holds, `expect`): the first writer of a request id wins, a second
    publication of the id finds it taken."""
    accepted = RequestAccepted(
        at=now, request=request, intake_seq=intake_seq, level=level, digest=digest
    )
    return Change(request.request_id, expect, (accepted,))


def reject(
    request_id: str,
    reason: str,
    field: str,
    form: str | None,
    intake_seq: int,
    excerpt: str,
    now: float,
    *,
    digest: str = "",
    expect: int = 0,
    callback_url: str | None = None,
) -> Change:
    """An invalid request enters the log as rejected, on the same condition as `accept`."""
    rejected = RequestRejected(
        at=now, request_id=request_id, reason=reason, field=field, form=form,
        intake_seq=intake_seq, excerpt=excerpt, digest=digest, callback_url=callback_url,
    )  # fmt: skip
    return Change(request_id, expect, (rejected,))


def is_duplicate(known: RequestState, intake_seq: int) -> bool:
    """Another intake message already started this request id's history."""
    return known.intake_seq != intake_seq


def is_conflict(known: RequestState, digest: str) -> bool:
    """A message under a known request id whose body differs from the one the id was
    recorded with. Histories from before digests were recorded cannot tell: not a conflict."""
    return bool(known.intake_seq and known.digest and digest and known.digest != digest)


def id_conflict(
    known: RequestState, intake_seq: int, digest: str, excerpt: str, now: float
) -> RequestIdConflict:
    """Refuse a message that reused `known`'s id with another body; the original stays."""
    return RequestIdConflict(
        at=now, request_id=known.request_id, intake_seq=intake_seq, digest=digest,
        original_intake_seq=known.intake_seq, original_digest=known.digest,
        reason=(
            f"request id {known.request_id} is already used by another request (intake"
            f" sequence {known.intake_seq}, now {known.state.value}) with a different body;"
            " that request is untouched: choose a new id"
        ),
        excerpt=excerpt,
    )  # fmt: skip


def cancel_awaits(known: RequestState, published_at: float, ttl: float) -> bool:
    """Whether a cancel recorded before the request arrived still applies to it: the request
    was published before the cancel, or at most `ttl` seconds after it."""
    recorded = known.cancel_recorded_at
    return recorded is not None and published_at - recorded <= ttl


def cancel_on_arrival(accepted: Change, known: RequestState, now: float) -> Change:
    """The request arrived while a cancel awaited it: it enters the log and is cancelled in
    the same append, so it is listed (as cancelled) but never scheduled."""
    reason = f"{known.cancel_reason} (cancelled before it arrived)"
    return accepted.then(RequestCancelled(at=now, attempt=0, reason=reason))


# --- attempts ----------------------------------------------------------------------------


def claim(state: RequestState, queued_seq: int, worker: str, now: float) -> Change | None:
    """Claim a queued request for an attempt; None when it is no longer the one that was
    queued (moved on: cancelled, claimed and placed by another worker, requeued since)."""
    if state.state not in SCHEDULABLE or state.queued_seq != queued_seq:
        return None
    claimed = RequestClaimed(at=now, attempt=state.attempt, worker=worker)
    return Change(state.request_id, state.last_seq, (claimed,))


def commit(
    base: Change,
    attempt: int,
    placements: tuple[Placement, ...],
    level_index: int,
    explanation: Explanation,
    worker: str,
    now: float,
) -> Change:
    """The placement and one reservation per chosen node, after `base` (the acceptance of a
    new request, or nothing after a claim)."""
    committed = PlacementCommitted(
        at=now, attempt=attempt, placements=placements, level_index=level_index,
        explanation=explanation, worker=worker,
    )  # fmt: skip
    reserved = tuple(
        CapacityReserved(
            at=now,
            cluster=p.cluster,
            node=p.node,
            request_id=base.request_id,
            attempt=attempt,
            amount=p.amount,
        )
        for p in placements
    )
    return Change(base.request_id, base.expect, (*base.events, committed), reserved)


def unschedulable(
    base: Change,
    state: RequestState,
    attempt: int,
    reason: str,
    retry: RetryPolicy,
    now: float,
    *,
    fast: bool,
    explanation: Explanation | None = None,
    blocked: bool = False,
) -> Change:
    """The attempt placed nothing: requeue for the next one (blocked: wait for capacity), or
    fail after Z* attempts."""
    outcome = retry.after_failure(
        attempt, reason, list(state.reasons), now, explanation, fast=fast, blocked=blocked
    )
    return base.then(outcome)


def give_up(
    base: Change,
    state: RequestState,
    attempt: int,
    reason: str,
    now: float,
    explanation: Explanation | None = None,
) -> Change:
    """End the request as failed now, whatever attempts remain: waiting cannot help it (no
    node of its clusters could ever hold it, or it was blocked for longer than allowed)."""
    failed = RequestFailed(
        at=now, attempt=attempt, reasons=(*state.reasons, f"attempt {attempt}: {reason}"),
        explanation=explanation,
    )  # fmt: skip
    return base.then(failed)


# --- binding -----------------------------------------------------------------------------


def bound(request_id: str, committed: PlacementCommitted, committed_seq: int, now: float) -> Change:
    """Every cluster applied its part; conditional on nothing having happened since the
    commit (a cancel, a takeover)."""
    event = RequestBound(at=now, attempt=committed.attempt, placements=committed.placements)
    return Change(request_id, committed_seq, (event,))


def binding_failed(
    state: RequestState,
    committed: PlacementCommitted,
    committed_seq: int,
    reason: str,
    refused: tuple[str, ...],
    retry: RetryPolicy,
    now: float,
) -> Change | None:
    """A cluster refused its part (what was applied is undone by the caller): the capacity
    goes back and the request is retried, passing over the refusing clusters. None when the
    request moved on since the commit: whoever moved it owns the outcome."""
    if state.last_seq != committed_seq:
        return None
    fast = state.request.fast if state.request is not None else False
    outcome = retry.after_failure(
        committed.attempt, reason, list(state.reasons), now, fast=fast, avoid=refused
    )
    released = releases(state.request_id, committed.attempt, committed.placements, reason, now)
    return Change(state.request_id, committed_seq, (outcome,), released)


def finish(state: RequestState, now: float) -> Change | None:
    """A bound workload ran to its end: its capacity goes back. None unless bound and running."""
    if state.state is not State.BOUND or state.finished:
        return None
    finished = WorkloadFinished(at=now, attempt=state.attempt)
    released = releases(state.request_id, state.attempt, state.placements, "workload finished", now)
    return Change(state.request_id, state.last_seq, (finished,), released)


# --- cancellation --------------------------------------------------------------------------


def cancel(state: RequestState, reason: str, now: float) -> Change | None:
    """Cancel in any state that is not final (None: final, nothing to do). A request the log
    does not know yet gets a `CancelRecorded` (not a request event, so nothing is listed),
    which cancels it if it arrives within the configured time. What it holds is released in
    the same change, and the event lists its placements so binders remove them.
    """
    if state.state in FINAL_STATES:
        return None
    if state.state is State.NEW:
        recorded = CancelRecorded(at=now, reason=reason)
        return Change(state.request_id, state.last_seq, (recorded,))
    holds = state.state in _HOLDING_CAPACITY
    cancelled = RequestCancelled(
        at=now, attempt=state.attempt, reason=reason,
        placements=state.placements if holds else (),
    )  # fmt: skip
    released: tuple[CapacityReleased, ...] = ()
    if holds and not state.finished:  # a finished workload gave its capacity back already
        released = releases(state.request_id, state.attempt, state.placements, "cancelled", now)
    return Change(state.request_id, state.last_seq, (cancelled,), released)


def releases(
    request_id: str, attempt: int, placements: tuple[Placement, ...], reason: str, now: float
) -> tuple[CapacityReleased, ...]:
    return tuple(
        CapacityReleased(
            at=now,
            cluster=p.cluster,
            node=p.node,
            request_id=request_id,
            attempt=attempt,
            reason=reason,
        )
        for p in placements
    )
