"""The event store's messages go on the wire byte for byte as nats-py's `publish` writes them,
and are refused where it refuses them."""

from __future__ import annotations

import dataclasses

import nats.errors
import pytest
from nats.aio.client import Client

from gsch.eventstore.appends import EXPECTED_SCOPE, EXPECTED_SEQ, MSG_ID, Append
from gsch.eventstore.store import EventStore
from gsch.eventstore.wire import header_block, header_line, publish
from gsch.model.events import RequestClaimed

# Values as a header can hold them: plain, padded, with line breaks inside, non-ASCII.
HEADERS = [
    {MSG_ID: "r-1:RequestClaimed:93e8f00d1"},
    {MSG_ID: "  padded\t", EXPECTED_SEQ: "0"},
    {MSG_ID: "a\r\nInjected: 1", EXPECTED_SEQ: "17", EXPECTED_SCOPE: "gsch.events.req.r-1.>"},
    {MSG_ID: "naïve-é", "Nats-Batch-Id": "x" * 32, "Nats-Batch-Sequence": "3"},
]


def sent_last(nc: Client) -> bytes:
    """What the last publish put in the connection's outgoing buffer (nothing in between
    yields to the flusher: a publish signals it without suspending)."""
    return bytes(nc._pending[-1])


@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize("reply", ["", "_INBOX.abc.1"])
async def test_bytes_as_nats_py_writes_them(
    nc: Client, headers: dict[str, str], reply: str
) -> None:
    payload = b'{"type":"RequestClaimed"}'
    await nc.publish("gsch.test.wire", payload, reply=reply, headers=headers)
    theirs = sent_last(nc)
    lines = [header_line(name, value) for name, value in headers.items()]
    await publish(nc, "gsch.test.wire", payload, reply, header_block(*lines))
    assert sent_last(nc) == theirs


@pytest.mark.parametrize("subject", ["", "a b", "a\r\nPUB x 1"])
async def test_bad_subjects_refused_as_nats_py_refuses_them(nc: Client, subject: str) -> None:
    with pytest.raises(nats.errors.BadSubjectError):
        await nc.publish(subject, b"x", headers={MSG_ID: "m"})
    with pytest.raises(nats.errors.BadSubjectError):
        await publish(nc, subject, b"x", "", header_block(header_line(MSG_ID, "m")))
    with pytest.raises(nats.errors.BadSubjectError):
        await publish(nc, "gsch.test.wire", b"x", subject or "a b", header_block())


async def test_too_large_and_closed_refused(nc: Client) -> None:
    with pytest.raises(nats.errors.MaxPayloadError):
        await publish(nc, "gsch.test.wire", b"x" * (nc.max_payload + 1), "", header_block())
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await publish(nc, "gsch.test.wire", b"x", "", header_block())


def test_an_append_s_header_lines_follow_its_expectation() -> None:
    event = RequestClaimed(at=1.0, attempt=1, worker="w")
    item = Append("gsch.events.req.r.RequestClaimed", event, "m-1", 5, "gsch.events.req.r.>")
    assert item.header_lines == (
        b"Nats-Msg-Id: m-1\r\nNats-Expected-Last-Subject-Sequence: 5\r\n"
        b"Nats-Expected-Last-Subject-Sequence-Subject: gsch.events.req.r.>\r\n"
    )
    # A copy conditional on a newer sequence (a revalidator's rebase) says so on the wire.
    rebased = dataclasses.replace(item, expect_seq=9)
    assert b"Nats-Expected-Last-Subject-Sequence: 9\r\n" in rebased.header_lines
    unconditional = Append("gsch.events.req.r.RequestClaimed", event, "m-2")
    assert unconditional.header_lines == b"Nats-Msg-Id: m-2\r\n"


async def test_a_single_append_s_answer_comes_on_the_store_s_inbox(store: EventStore) -> None:
    event = RequestClaimed(at=1.0, attempt=1, worker="w")
    item = Append("gsch.events.req.wire-1.RequestClaimed", event, "m-1", 0, None)
    first = await store._publish_one(item)
    again = Append("gsch.events.req.wire-2.RequestClaimed", event, "m-2")
    assert await store._publish_one(again) == first + 1
    last = await store.last("gsch.events.req.wire-2.>")
    assert last is not None
    assert (last.msg_id, last.seq) == ("m-2", first + 1)
