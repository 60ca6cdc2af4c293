"""Subjects name entities and parse back into the same typed keys, whatever the names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsch.eventstore.subjects import (
    ClusterKey,
    EntityKey,
    LatencyKey,
    NodeKey,
    PodsKey,
    RequestKey,
    SubjectError,
    parse_subject,
    request_key_of,
)

names = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)
keys = st.one_of(
    st.builds(RequestKey, names),
    st.builds(ClusterKey, names),
    st.builds(NodeKey, names, names),
    st.builds(LatencyKey, names, names),
    st.builds(PodsKey, names, names),
)


@given(keys, st.sampled_from(["RequestAccepted", "NodeDeclared", "CapacityReserved"]))
def test_a_subject_parses_back_into_its_key(key: EntityKey, event_type: str) -> None:
    subject = key.subject(event_type)
    assert parse_subject(subject) == (key, event_type)
    # No name can reach into another entity's subject: the history covers the subject.
    assert subject.startswith(key.history.rstrip(">*"))


def test_only_request_subjects_have_a_request() -> None:
    assert request_key_of(RequestKey("r.1").subject("RequestBound")) == RequestKey("r.1")
    assert request_key_of(NodeKey("c", "n").subject("NodeDeclared")) is None
    assert request_key_of("gsch.requests") is None


@pytest.mark.parametrize(
    "subject", ["gsch.events.req.r1", "gsch.events.cluster.c.x.n.T", "other.events.req.r.T", ""]
)
def test_foreign_subjects_are_refused_by_name(subject: str) -> None:
    with pytest.raises(SubjectError, match="not an event-log subject"):
        parse_subject(subject)
