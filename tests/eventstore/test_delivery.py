"""A delivery's position read from its reply subject: the same numbers nats-py's metadata
gives, for both forms of the reply subject, and a clear refusal of anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from gsch.eventstore.delivery import NotJetStreamError, position_of

numbers = st.integers(min_value=1, max_value=2**63 - 1)
stamps = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)  # up to 2100


@given(numbers, numbers, numbers, stamps, st.integers(0, 10**6), st.booleans())
def test_a_position_is_what_the_client_library_reads(
    delivered: int, seq: int, consumer_seq: int, stamp: int, pending: int, domain: bool
) -> None:
    tail = f"GSCH_EVENTS.abcdEF12.{delivered}.{seq}.{consumer_seq}.{stamp}.{pending}"
    reply = f"$JS.ACK.hub.ACCHASH.{tail}.Xy7" if domain else f"$JS.ACK.{tail}"
    metadata = Msg(_client=None, subject="s", reply=reply).metadata  # type: ignore[arg-type]
    position = position_of(reply)
    assert position.seq == metadata.sequence.stream
    assert position.deliveries == metadata.num_delivered
    assert position.stored_at == pytest.approx(metadata.timestamp.timestamp(), abs=1e-6)
    assert position.pending == metadata.num_pending


@pytest.mark.parametrize(
    "reply",
    [None, "", "_INBOX.abc", "$JS.ACK.S.C.1.2.3", "$JS.ACK.S.C.x.2.3.4.5",
     "$JS.API.S.C.1.2.3.4.5", "$JS.ACK.d.h.S.C.1.2.3.4"],
)  # fmt: skip
def test_anything_else_is_refused_by_name(reply: str | None) -> None:
    with pytest.raises(NotJetStreamError, match="not a JetStream delivery"):
        position_of(reply)
