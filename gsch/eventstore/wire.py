"""Publishing the event store's messages with header blocks written once.

nats-py's `publish` takes headers as a dict and, for every message, checks each name against
a pattern, trims and cleans each value and writes the block out again. The event store's
header names are its own constants, and an append's message id and expectation do not
change when its message is sent again (a group refused for one stale member goes out again
without it): so an append's header lines are written once, exactly as nats-py writes them,
and a message goes out with its block as it is. Everything else `publish` checks (subject,
connection state, size) is checked here the same way, and tests compare the bytes this puts
on the wire with nats-py's own.
"""

from __future__ import annotations

import re

import nats.errors
from nats.aio.client import Client
from nats.protocol.command import hpub_cmd

# What nats-py does to a header value: trimmed, and CR/LF made spaces so that a value can
# never end its line.
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_SUBJECT_INVALID = re.compile(r"[ \t\r\n]")
_STATUS_LINE = b"NATS/1.0\r\n"
_CRLF = b"\r\n"


def header_line(name: str, value: str) -> bytes:
    """One `Name: value` line as nats-py writes it (`name` is one of the store's own)."""
    value = value.strip()
    if "\r" in value or "\n" in value:  # never in the store's own values: skip the copy
        value = value.translate(_VALUE_NEWLINES)
    return f"{name}: {value}\r\n".encode()


def header_block(*lines: bytes) -> bytes:
    """A message's whole header block from its lines."""
    return b"".join((_STATUS_LINE, *lines, _CRLF))


async def publish(nc: Client, subject: str, payload: bytes, reply: str, block: bytes) -> None:
    """`nc.publish(subject, payload, reply=reply, headers=...)` with the header block
    already written; raises what nats-py's `publish` raises for the same message."""
    await nc._send_command(_command(nc, subject, payload, reply, block))
    # As nats-py does after a publish: the flusher is signalled unless it already is.
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()


def _command(nc: Client, subject: str, payload: bytes, reply: str, block: bytes) -> bytes:
    """The command that publishes a message, after the checks nats-py's `publish` makes."""
    if not subject or _SUBJECT_INVALID.search(subject):
        raise nats.errors.BadSubjectError
    if reply and _SUBJECT_INVALID.search(reply):
        raise nats.errors.BadSubjectError
    if nc.is_closed:
        raise nats.errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise nats.errors.ConnectionDrainingError
    size = len(payload)
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size
    ):
        raise nats.errors.OutboundBufferLimitError  # reconnecting, and no room to buffer it
    if size > nc._max_payload:
        raise nats.errors.MaxPayloadError
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += size
    return hpub_cmd(subject, reply, block, payload)
