"""A work item reads its place in the stream from its reply subject, with the numbers nats-py's
metadata gives: the id generated for a request that came without one is made of them, so a
message redelivered across versions must get the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from gsch.eventstore.consumers import WorkItem

numbers = st.integers(min_value=1, max_value=2**63 - 1)
stamps = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)  # up to 2100


@given(numbers, numbers, stamps, st.booleans())
def test_a_work_item_s_numbers_are_the_client_library_s(
    delivered: int, seq: int, stamp: int, domain: bool
) -> None:
    tail = f"GSCH_INTAKE.gsch-intake.{delivered}.{seq}.7.{stamp}.0"
    reply = f"$JS.ACK.hub.ACCHASH.{tail}.Xy7" if domain else f"$JS.ACK.{tail}"
    msg = Msg(_client=None, subject="gsch.requests", reply=reply, data=b"{}")  # type: ignore[arg-type]
    metadata = msg.metadata
    item = WorkItem(msg)
    assert item.seq == metadata.sequence.stream
    assert item.deliveries == metadata.num_delivered
    # As gsch read it before (through nats-py's datetime): exactly, not approximately.
    assert item.published_ns == int(metadata.timestamp.timestamp() * 1e9)
