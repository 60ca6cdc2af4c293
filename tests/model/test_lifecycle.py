"""The request state machine folded from events, and the retry decisions of the worker."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.events import (
    AnyEvent,
    CapacityReserved,
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
    decode_event,
    encode_event,
    event_type,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.model.retry import RetryPolicy
from gsch.model.states import (
    FINAL_STATES,
    SETTLED_STATES,
    RequestState,
    State,
    entered_by,
    step,
)
from gsch.runtime.config import QueueConfig

REQUEST = Request(
    request_id="req-1",
    policy=Policy.MOST_REQUESTED,
    mode="default",
    levels=(("c1",), ("c2", "c3")),
    demand=Resources(cpu_m=500, memory=2**20, pods=1),
)
FAST = Request(request_id="req-2", policy=Policy.MOST_REQUESTED, mode="default", fast=True)
PLACEMENT = Placement("c2", "c2-w1", REQUEST.demand)
GEDGE = RetryPolicy.from_config(QueueConfig())


def accepted(at: float = 100.0) -> RequestAccepted:
    return RequestAccepted(at=at, request=REQUEST, intake_seq=7, level=QueueLevel.BASE)


def test_defaults_are_gedge_system_values() -> None:
    assert (GEDGE.first_after_failures, GEDGE.max_failures) == (2, 5)
    assert GEDGE.backoff_base > 0
    assert GEDGE.backoff_max >= GEDGE.backoff_base


def test_happy_path() -> None:
    state = RequestState(request_id="req-1")
    assert state == RequestState(request_id="req-1", state=State.NEW)
    state.apply(accepted(), 10)
    assert (state.state, state.request, state.attempt) == (State.QUEUED, REQUEST, 1)
    assert (state.intake_seq, state.accepted_seq, state.queued_seq) == (7, 10, 10)
    assert state.accepted_at == 100.0
    state.apply(RequestClaimed(at=101, attempt=1, worker="w1"), 11)
    assert (state.state, state.claimed_by) == (State.SCHEDULING, "w1")
    explanation = Explanation(summary="level 2 of 2: c2/c2-w1")
    state.apply(
        PlacementCommitted(
            at=102,
            attempt=1,
            placements=(PLACEMENT,),
            level_index=1,
            explanation=explanation,
            worker="w1",
        ),
        12,
    )
    assert (state.state, state.placements, state.explanation) == (
        State.SCHEDULED,
        (PLACEMENT,),
        explanation,
    )
    state.apply(RequestBound(at=103, attempt=1, placements=(PLACEMENT,)), 13)
    assert state.state is State.BOUND
    assert state.state in SETTLED_STATES
    assert state.state not in FINAL_STATES
    state.apply(WorkloadFinished(at=104, attempt=1), 14)
    assert state.finished
    assert state.last_seq == 14
    assert state.reasons == []


def test_rejected() -> None:
    state = RequestState(request_id="req-x")
    state.apply(
        RequestRejected(at=1, request_id="req-x", reason="policy: unknown", intake_seq=3), 5
    )
    assert (state.state, state.intake_seq, state.reasons) == (
        State.REJECTED,
        3,
        ["policy: unknown"],
    )
    assert state.state in FINAL_STATES
    assert state.request is None


def run_failures(policy: RetryPolicy, count: int) -> tuple[RequestState, list[object]]:
    """Accept, then let `count` attempts fail in a row, feeding each outcome back."""
    state = RequestState(request_id="req-1")
    state.apply(accepted(), 1)
    seq = 1
    outcomes: list[object] = []
    for n in range(count):
        seq += 1
        state.apply(RequestClaimed(at=200 + n, attempt=state.attempt, worker="w"), seq)
        outcome = policy.after_failure(
            state.attempt, f"no room #{n + 1}", list(state.reasons), now=1000.0 + n
        )
        outcomes.append(outcome)
        seq += 1
        state.apply(outcome, seq)
        # The event survives the log.
        assert decode_event(encode_event(outcome)) == outcome
        if state.state is State.FAILED:
            break
    return state, outcomes


def test_failures_requeue_until_more_than_z_then_fail_with_every_reason() -> None:
    state, outcomes = run_failures(GEDGE, 10)
    # Z* = 5: five failures are retried; the sixth ends the request.
    assert [type(o) for o in outcomes] == [RequestRequeued] * 5 + [RequestFailed]
    failed = outcomes[-1]
    assert isinstance(failed, RequestFailed)
    assert failed.attempt == 6
    assert failed.reasons == tuple(f"attempt {n}: no room #{n}" for n in range(1, 7))
    assert state.state is State.FAILED
    assert state.reasons == list(failed.reasons)
    requeued = [o for o in outcomes if isinstance(o, RequestRequeued)]
    assert [o.attempt for o in requeued] == [2, 3, 4, 5, 6]


def test_requeue_resets_the_claim_and_placements() -> None:
    state = RequestState(request_id="req-1")
    state.apply(accepted(), 1)
    state.apply(RequestClaimed(at=1, attempt=1, worker="w1"), 2)
    state.apply(
        PlacementCommitted(
            at=2,
            attempt=1,
            placements=(PLACEMENT,),
            level_index=0,
            explanation=Explanation(),
            worker="w1",
        ),
        3,
    )
    explanation = Explanation(summary="bind failed")
    state.apply(
        RequestRequeued(
            at=3, attempt=2, reason="attempt 1: bind", not_before=9.5, explanation=explanation
        ),
        4,
    )
    assert state.state is State.QUEUED
    assert (state.claimed_by, state.placements, state.attempt) == (None, (), 2)
    assert (state.queued_seq, state.not_before, state.explanation) == (4, 9.5, explanation)
    assert state.accepted_seq == 1


# One event of each request type, as a worker, binder or cancel would append it.
ONE_OF_EACH: tuple[AnyEvent, ...] = (
    accepted(),
    RequestRejected(at=1, request_id="req-1", reason="policy: unknown", field="policy"),
    RequestClaimed(at=2, attempt=2, worker="w2"),
    PlacementCommitted(
        at=3, attempt=2, placements=(PLACEMENT,), level_index=1, explanation=Explanation(),
        worker="w2",
    ),
    RequestRequeued(at=4, attempt=3, reason="bind failed", not_before=9.0, blocked=True),
    RequestFailed(at=5, attempt=6, reasons=("attempt 6: no room",)),
    RequestBound(at=6, attempt=2, placements=(PLACEMENT,)),
    WorkloadFinished(at=7, attempt=2),
    RequestCancelled(at=8, attempt=2, reason="by the user", placements=(PLACEMENT,)),
)  # fmt: skip


def bound() -> RequestState:
    state = RequestState(request_id="req-1")
    for seq, event in enumerate(ONE_OF_EACH[:1] + ONE_OF_EACH[2:4] + ONE_OF_EACH[6:7], 1):
        state.apply(event, seq)
    assert state.state is State.BOUND
    return state


def test_a_bound_request_can_still_be_cancelled() -> None:
    state = bound()
    state.apply(RequestCancelled(at=9, attempt=2, reason="by the user", placements=(PLACEMENT,)), 5)
    assert (state.state, state.placements, state.reasons) == (State.CANCELLED, (), ["by the user"])
    assert state.state in FINAL_STATES


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
@pytest.mark.parametrize("event", ONE_OF_EACH, ids=event_type)
def test_nothing_leaves_a_final_state(final: State, event: AnyEvent) -> None:
    assert step(final, event) is None
    state = RequestState(request_id="req-1", state=final, attempt=1, last_seq=3)
    before = msgspec.structs.replace(state, reasons=list(state.reasons))
    state.apply(event, 4)
    # The event is still the history's last one (conditional appends expect it), no more.
    assert state == msgspec.structs.replace(before, last_seq=4)


@pytest.mark.parametrize("live", [s for s in State if s not in FINAL_STATES])
@pytest.mark.parametrize("event", ONE_OF_EACH, ids=event_type)
def test_a_live_request_enters_the_state_its_event_names(live: State, event: AnyEvent) -> None:
    change = step(live, event)
    assert change is not None
    assert change.state is (entered_by(event_type(event)) or live)


def test_a_cluster_event_on_a_request_subject_changes_no_state() -> None:
    reserved = CapacityReserved(
        at=1, cluster="c2", node="c2-w1", request_id="req-1", attempt=1, amount=REQUEST.demand
    )
    assert step(State.QUEUED, reserved) is None
    assert entered_by(event_type(reserved)) is None
    state = bound()
    state.apply(reserved, 9)
    assert (state.state, state.last_seq) == (State.BOUND, 9)


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(first_after_failures=2, max_failures=5, backoff_base=0.5, backoff_max=3.0)
    assert [policy.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.backoff(10_000) == 3.0
    outcome = policy.after_failure(3, "x", [], now=50.0)
    assert isinstance(outcome, RequestRequeued)
    assert outcome.not_before == 52.0


@settings(max_examples=100)
@given(
    st.floats(min_value=0.001, max_value=10),
    st.floats(min_value=0.001, max_value=1000),
    st.integers(min_value=1, max_value=5000),
)
def test_backoff_is_monotonic_positive_and_bounded(base: float, cap: float, failures: int) -> None:
    policy = RetryPolicy(2, 10**6, base, cap)
    delay = policy.backoff(failures)
    assert 0 < delay <= cap
    if failures <= 30:
        assert delay == min(cap, base * 2 ** (failures - 1))
    assert policy.backoff(failures + 1) >= delay


@pytest.mark.parametrize(
    ("failures", "fast", "level"),
    [
        (0, False, QueueLevel.BASE),
        (0, True, QueueLevel.FAST),
        (2, False, QueueLevel.BASE),
        (2, True, QueueLevel.FAST),
        (3, False, QueueLevel.FIRST),
        (3, True, QueueLevel.FIRST),
        (5, True, QueueLevel.FIRST),
    ],
)
def test_levels_first_after_more_than_k_failures_else_fast_flag(
    failures: int, fast: bool, level: QueueLevel
) -> None:
    request = FAST if fast else REQUEST
    assert GEDGE.level(request, failures) is level


@settings(max_examples=100)
@given(st.integers(0, 6), st.integers(0, 8), st.integers(1, 12), st.booleans())
def test_retry_decisions_follow_k_and_z(k: int, z: int, attempt: int, fast: bool) -> None:
    policy = RetryPolicy(k, z, 1.0, 60.0)
    outcome = policy.after_failure(attempt, "r", [f"attempt {n}: r" for n in range(1, attempt)], 0)
    if attempt > z:
        assert isinstance(outcome, RequestFailed)
        assert len(outcome.reasons) == attempt
    else:
        assert isinstance(outcome, RequestRequeued)
        assert outcome.attempt == attempt + 1
        assert outcome.not_before == policy.backoff(attempt) > 0
    request = FAST if fast else REQUEST
    expected = QueueLevel.FIRST if attempt > k else QueueLevel.FAST if fast else QueueLevel.BASE
    assert policy.level(request, attempt) is expected
