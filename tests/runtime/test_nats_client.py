"""gsch's nats-py client parses message headers exactly as nats-py does, and the processes'
connections use it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from gsch.bus.roles import Role
from gsch.runtime.config import Config
from gsch.runtime.connection import connect
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.nats_client import GschClient

# Bytes a header block is made of, the awkward ones often: separators, every kind of
# whitespace str.isspace knows in ASCII (\x1c-\x1f too), non-ASCII and invalid UTF-8.
pieces = st.sampled_from(
    [b"Nats-Msg-Id", b"Nats-Batch-Sequence", b"a", b"Z9", b":", b": ", b" ", b"\t", b"\x0b",
     b"\x0c", b"\x1c", b"\x1f", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b"\xff", b"-", b"v:1"]
)  # fmt: skip
lines = st.lists(pieces, max_size=8).map(b"".join)
blocks = st.lists(lines, max_size=8).map(b"\r\n".join)


@given(blocks)
def test_headers_parse_as_nats_py_parses_them(raw: bytes) -> None:
    assert GschClient._parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_a_stored_event_s_headers() -> None:
    raw = (
        b"Nats-Msg-Id: r-1:CapacityReserved:93e8\r\n"
        b"Nats-Expected-Last-Subject-Sequence: 33949\r\n"
        b"Nats-Batch-Id: 2614\r\nNats-Batch-Sequence: 15\r\nNats-Batch-Commit: 1\r\n\r\n"
    )
    assert GschClient._parse_header_lines(raw) == {
        "Nats-Msg-Id": "r-1:CapacityReserved:93e8",
        "Nats-Expected-Last-Subject-Sequence": "33949",
        "Nats-Batch-Id": "2614",
        "Nats-Batch-Sequence": "15",
        "Nats-Batch-Commit": "1",
    }


async def test_a_process_connects_with_it(nats_server: EmbeddedNats) -> None:
    client = await connect(Config(), nats_server.url, "gsch-test-1", role=Role.WORKER)
    try:
        assert isinstance(client, GschClient)
    finally:
        await client.close()
