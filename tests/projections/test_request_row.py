"""The request row fold: the same lifecycle as the domain's RequestState, and idempotent."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

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
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.model.states import RequestState
from gsch.projections.request_row import RequestRow, apply_request_event, from_record, to_params

RID = "r1"
AMOUNT = Resources(cpu_m=100, pods=1)
REQUEST = Request(request_id=RID, policy=Policy.BIN_PACK, mode="default", project_name="p")

attempts = st.integers(min_value=1, max_value=6)
placements = st.lists(
    st.builds(Placement, st.sampled_from(["c1", "c2"]), st.sampled_from(["n1", "n2"]),
              st.just(AMOUNT)),
    min_size=1, max_size=2,
).map(tuple)  # fmt: skip
explanations = st.builds(Explanation, summary=st.text(max_size=5))
reasons = st.text(min_size=1, max_size=8)

events: st.SearchStrategy[AnyEvent] = st.one_of(
    st.builds(RequestAccepted, at=st.just(1.0), request=st.just(REQUEST), intake_seq=st.just(1),
              level=st.sampled_from(QueueLevel)),
    st.builds(RequestRejected, at=st.just(2.0), request_id=st.just(RID), reason=reasons,
              field=st.none() | st.just("policy")),
    st.builds(RequestClaimed, at=st.just(3.0), attempt=attempts, worker=st.just("w")),
    st.builds(PlacementCommitted, at=st.just(4.0), attempt=attempts, placements=placements,
              level_index=st.just(0), explanation=explanations, worker=st.just("w")),
    st.builds(RequestRequeued, at=st.just(5.0), attempt=attempts, reason=reasons,
              not_before=st.just(9.0), explanation=st.none() | explanations),
    st.builds(RequestFailed, at=st.just(6.0), attempt=attempts,
              reasons=st.lists(reasons, max_size=2).map(tuple),
              explanation=st.none() | explanations),
    st.builds(RequestBound, at=st.just(7.0), attempt=attempts, placements=placements),
    st.builds(WorkloadFinished, at=st.just(8.0), attempt=attempts),
    st.builds(RequestCancelled, at=st.just(9.0), attempt=attempts, reason=reasons,
              placements=st.just(()) | placements),
)  # fmt: skip


def fold(history: list[AnyEvent], row: RequestRow | None = None) -> RequestRow | None:
    for seq, event in enumerate(history, start=1):
        row = apply_request_event(row, RID, event, seq)
    return row


@given(st.lists(events, min_size=1, max_size=12))
def test_the_row_follows_the_domain_state(history: list[AnyEvent]) -> None:
    domain = RequestState(request_id=RID)
    for seq, event in enumerate(history, start=1):
        domain.apply(event, seq)
    row = fold(history)
    assert row is not None
    assert row.state == domain.state.value
    assert row.attempts == domain.attempt
    assert row.placements == domain.placements
    assert row.explanation == domain.explanation
    assert row.finished == domain.finished
    assert row.reason == (domain.reasons[-1] if domain.reasons else None)
    assert row.not_before == (domain.not_before or None)
    assert (row.submitted_seq, row.last_seq) == (1, len(history))


@given(st.lists(events, min_size=1, max_size=12), st.integers(min_value=0, max_value=12))
def test_replaying_a_prefix_changes_nothing(history: list[AnyEvent], cut: int) -> None:
    row = fold(history)
    before = msgspec.structs.replace(row) if row is not None else None
    again = fold(history[:cut], row)
    assert again == before


@given(st.lists(events, min_size=1, max_size=12))
def test_columns_round_trip(history: list[AnyEvent]) -> None:
    row = fold(history)
    assert row is not None
    stored = tuple(int(v) if isinstance(v, bool) else v for v in to_params(row))
    assert from_record(stored) == row


def test_a_requeue_clears_the_placement_and_keeps_the_explanation() -> None:
    why = Explanation(summary="c1 had the most free cpu")
    row = fold([
        RequestAccepted(at=1.0, request=REQUEST, intake_seq=1, level=QueueLevel.BASE),
        RequestClaimed(at=2.0, attempt=1, worker="w"),
        PlacementCommitted(at=3.0, attempt=1, placements=(Placement("c1", "n1", AMOUNT),),
                           level_index=0, explanation=why, worker="w"),
        RequestRequeued(at=4.0, attempt=2, reason="bind failed", not_before=5.0),
    ])  # fmt: skip
    assert row is not None
    assert (row.state, row.attempts, row.placements) == ("queued", 2, ())
    assert (row.reason, row.explanation, row.not_before) == ("bind failed", why, 5.0)
    assert (row.policy, row.project, row.submitted_at, row.updated_at) == (
        "GBinPackPriority", "p", 1.0, 4.0
    )  # fmt: skip


def test_a_bound_request_cancelled_is_cancelled_and_stays_so() -> None:
    placed = (Placement("c1", "n1", AMOUNT),)
    row = fold([
        RequestAccepted(at=1.0, request=REQUEST, intake_seq=1, level=QueueLevel.BASE),
        RequestClaimed(at=2.0, attempt=1, worker="w"),
        PlacementCommitted(at=3.0, attempt=1, placements=placed, level_index=0,
                           explanation=Explanation(), worker="w"),
        RequestBound(at=4.0, attempt=1, placements=placed),
        RequestCancelled(at=5.0, attempt=1, reason="by the user", placements=placed),
        # A binding that raced the cancel: nothing leaves a final state.
        RequestBound(at=6.0, attempt=1, placements=placed),
    ])  # fmt: skip
    assert row is not None
    assert (row.state, row.placements, row.reason) == ("cancelled", (), "by the user")
    assert (row.updated_at, row.last_seq) == (6.0, 6)
