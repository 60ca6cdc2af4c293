"""The lifecycle's decisions are pure: (state, command) → the events to append, with the
expectation that makes two concurrent deciders exclude each other."""

from __future__ import annotations

import pytest

from gsch.eventstore.appends import writes_of
from gsch.eventstore.subjects import NodeKey, RequestKey
from gsch.model.decisions import (
    Change,
    accept,
    binding_failed,
    cancel,
    cancel_awaits,
    cancel_on_arrival,
    claim,
    commit,
    finish,
    give_up,
    id_conflict,
    is_conflict,
    is_duplicate,
    unschedulable,
)
from gsch.model.events import (
    CancelRecorded,
    CapacityReleased,
    CapacityReserved,
    Explanation,
    Placement,
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestCancelled,
    RequestClaimed,
    RequestFailed,
    RequestRequeued,
    WorkloadFinished,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.model.retry import RetryPolicy
from gsch.model.states import RequestState, State

DEMAND = Resources(cpu_m=500, memory=2**30)
REQUEST = Request(
    request_id="r1", policy=Policy.MOST_REQUESTED, mode="default", levels=(("c1", "c2"),),
    demand=DEMAND,
)  # fmt: skip
PLACEMENTS = (Placement("c1", "n1", DEMAND), Placement("c2", "n7", DEMAND))
RETRY = RetryPolicy(first_after_failures=2, max_failures=5, backoff_base=0.5, backoff_max=30.0)


def history(*events: object) -> RequestState:
    state = RequestState(request_id="r1")
    for seq, event in enumerate(events, start=10):
        state.apply(event, seq)  # type: ignore[arg-type]
    return state


def accepted() -> RequestAccepted:
    return RequestAccepted(at=1.0, request=REQUEST, intake_seq=3, level=QueueLevel.BASE)


def committed(attempt: int = 1) -> PlacementCommitted:
    return PlacementCommitted(
        at=2.0, attempt=attempt, placements=PLACEMENTS, level_index=0,
        explanation=Explanation(), worker="w",
    )  # fmt: skip


def test_a_new_request_is_accepted_on_an_empty_history_and_committed_in_the_same_change() -> None:
    base = accept(REQUEST, intake_seq=3, level=QueueLevel.FAST, now=1.0)
    assert base.expect == 0  # the claim: the first writer of the id wins
    change = commit(base, 1, PLACEMENTS, 0, Explanation(), "w", 2.0)
    assert [type(e) for e in change.events] == [RequestAccepted, PlacementCommitted]
    assert [(r.cluster, r.node, r.request_id, r.amount) for r in change.capacity] == [
        ("c1", "n1", "r1", DEMAND),
        ("c2", "n7", "r1", DEMAND),
    ]


def test_a_claim_is_conditional_on_the_history_it_read_and_only_for_the_queued_message() -> None:
    state = history(accepted())
    change = claim(state, queued_seq=state.queued_seq, worker="w2", now=5.0)
    assert change is not None
    assert change.expect == state.last_seq
    assert isinstance(change.outcome, RequestClaimed)
    assert change.outcome.worker == "w2"
    assert claim(state, queued_seq=state.queued_seq + 1, worker="w2", now=5.0) is None
    placed = history(accepted(), committed())
    assert claim(placed, queued_seq=placed.queued_seq, worker="w2", now=5.0) is None


def test_nothing_placed_requeues_blocked_then_fails_after_z() -> None:
    state = history(accepted())
    base = Change("r1", state.last_seq, ())
    change = unschedulable(base, state, 1, "full", RETRY, 9.0, fast=True, blocked=True)
    outcome = change.outcome
    assert isinstance(outcome, RequestRequeued)
    assert (outcome.blocked, outcome.level, outcome.attempt) == (True, QueueLevel.FAST, 2)
    assert change.expect == state.last_seq
    assert change.capacity == ()
    final = unschedulable(base, state, 6, "full", RETRY, 9.0, fast=False)
    assert isinstance(final.outcome, RequestFailed)


def test_a_refused_binding_releases_and_passes_over_the_cluster_unless_moved_on() -> None:
    state = history(accepted(), committed())
    change = binding_failed(state, committed(), state.last_seq, "quota", ("c2",), RETRY, 3.0)
    assert change is not None
    assert isinstance(change.outcome, RequestRequeued)
    assert change.outcome.avoid_clusters == ("c2",)
    assert {(r.cluster, r.node) for r in change.capacity} == {("c1", "n1"), ("c2", "n7")}
    assert all(isinstance(r, CapacityReleased) for r in change.capacity)
    assert binding_failed(state, committed(), state.last_seq - 1, "x", (), RETRY, 3.0) is None


@pytest.mark.parametrize(
    ("events", "releases"),
    [
        ((accepted(),), 0),
        ((accepted(), committed()), 2),
        ((accepted(), committed(), RequestBound(at=3.0, attempt=1, placements=PLACEMENTS)), 2),
        (
            (
                accepted(),
                committed(),
                RequestBound(at=3.0, attempt=1, placements=PLACEMENTS),
                WorkloadFinished(at=4.0, attempt=1),
            ),
            0,  # a finished workload gave its capacity back already
        ),
    ],
)
def test_cancel_releases_exactly_what_is_held(events: tuple[object, ...], releases: int) -> None:
    state = history(*events)
    change = cancel(state, "no longer needed", 9.0)
    assert change is not None
    assert isinstance(change.outcome, RequestCancelled)
    assert change.expect == state.last_seq
    assert len(change.capacity) == releases


def test_a_cancel_before_arrival_is_recorded_not_listed_and_expires() -> None:
    """A cancel of an unknown id is no request event (nothing enters a state), and it
    cancels the request only if that is published within the allowed time after it."""
    change = cancel(RequestState(request_id="r1"), "changed my mind", 100.0)
    assert change is not None
    assert change.events == (CancelRecorded(at=100.0, reason="changed my mind"),)
    assert change.expect == 0
    waiting = history(*change.events)
    assert waiting.state is State.NEW
    assert waiting.cancel_recorded_at == 100.0
    assert cancel_awaits(waiting, published_at=90.0, ttl=60.0)  # published before the cancel
    assert cancel_awaits(waiting, published_at=160.0, ttl=60.0)
    assert not cancel_awaits(waiting, published_at=160.5, ttl=60.0)
    assert not cancel_awaits(RequestState(request_id="r1"), published_at=0.0, ttl=60.0)
    # On arrival: accepted (conditional on the cancel being all the history holds) and
    # cancelled in the same append.
    base = accept(REQUEST, 7, QueueLevel.BASE, 101.0, expect=waiting.last_seq)
    arrived = cancel_on_arrival(base, waiting, 101.0)
    assert arrived.expect == waiting.last_seq
    assert [type(e) for e in arrived.events] == [RequestAccepted, RequestCancelled]
    assert history(*change.events, *arrived.events).state is State.CANCELLED


def test_a_second_body_under_a_known_id_is_a_conflict_the_same_body_a_duplicate() -> None:
    first = RequestAccepted(
        at=1.0, request=REQUEST, intake_seq=3, level=QueueLevel.BASE, digest="aaa"
    )
    known = history(first)
    assert known.digest == "aaa"
    assert is_duplicate(known, 4)
    assert not is_duplicate(known, 3)
    assert not is_conflict(known, "aaa")
    assert is_conflict(known, "bbb")
    assert not is_conflict(history(accepted()), "bbb")  # recorded before digests: cannot tell
    refused = id_conflict(known, 4, "bbb", "{...}", 5.0)
    assert (refused.intake_seq, refused.original_intake_seq) == (4, 3)
    assert (refused.digest, refused.original_digest) == ("bbb", "aaa")
    assert "r1" in refused.reason
    assert "different body" in refused.reason


def test_giving_up_fails_at_once_with_the_reason_and_the_history() -> None:
    state = history(accepted())
    base = Change(state.request_id, state.last_seq, ())
    change = give_up(base, state, 1, "no node could ever hold it", 3.0)
    assert change.expect == state.last_seq
    assert isinstance(change.outcome, RequestFailed)
    assert change.outcome.reasons == ("attempt 1: no node could ever hold it",)
    assert history(accepted(), change.outcome).state is State.FAILED


@pytest.mark.parametrize("final", [State.FAILED, State.CANCELLED, State.REJECTED])
def test_cancelling_a_final_request_decides_nothing(final: State) -> None:
    state = RequestState(request_id="r1", state=final, last_seq=40)
    assert cancel(state, "again", 9.0) is None


def test_only_a_running_bound_workload_finishes() -> None:
    bound = history(accepted(), committed(), RequestBound(at=3.0, attempt=1, placements=PLACEMENTS))
    change = finish(bound, 8.0)
    assert change is not None
    assert isinstance(change.outcome, WorkloadFinished)
    assert len(change.capacity) == 2
    assert finish(history(accepted(), committed()), 8.0) is None
    bound.apply(WorkloadFinished(at=8.0, attempt=1), 99)
    assert finish(bound, 9.0) is None


def test_writes_put_reservations_under_their_nodes_sequences_and_releases_unconditional() -> None:
    change = commit(
        accept(REQUEST, 3, QueueLevel.BASE, 1.0), 1, PLACEMENTS, 0, Explanation(), "w", 2.0
    )
    with pytest.raises(ValueError, match="needs the node's sequence"):
        writes_of(change)
    writes = writes_of(change, {("c1", "n1"): 4, ("c2", "n7"): 0})
    assert [(w.key, w.expect) for w in writes] == [
        (RequestKey("r1"), 0),
        (NodeKey("c1", "n1"), 4),
        (NodeKey("c2", "n7"), 0),
    ]
    assert all(isinstance(w.events[0], CapacityReserved) for w in writes[1:])
    released = cancel(history(accepted(), committed()), "x", 3.0)
    assert released is not None
    assert [w.expect for w in writes_of(released)] == [11, None, None]
