"""Publishing the event store's messages: header blocks written once, and messages that may
wait a moment to share a write.

nats-py's `publish` takes headers as a dict and, for every message, checks each name against
a pattern, trims and cleans each value and writes the block out again. The event store's
header names are its own constants, and an append's message id and expectation do not
change when its message is sent again (a group refused for one stale member goes out again
without it): so an append's header lines are written once, exactly as nats-py writes them,
and a message goes out with its block as it is. Everything else `publish` checks (subject,
connection state, size) is checked here the same way, and tests compare the bytes this puts
on the wire with nats-py's own.

nats-py also signals its flusher after every publish, and the flusher writes to the socket
on its next turn of the event loop. Where each message is published on a turn of its own
(a binder's outcomes, each after a cluster answered; then their acknowledgements), every one
costs a system call of its own: a fifth of a binder's CPU. An acknowledgement has nobody
waiting for it, so an `Outbox` sends it with whatever the connection writes next (the next
outcome, a pull request, a batch), or after a millisecond when nothing else is written.
"""

from __future__ import annotations

import asyncio
import re

import nats.errors
from nats.aio.client import Client
from nats.protocol.command import hpub_cmd, pub_cmd

# What nats-py does to a header value: trimmed, and CR/LF made spaces so that a value can
# never end its line.
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_SUBJECT_INVALID = re.compile(r"[ \t\r\n]")
_STATUS_LINE = b"NATS/1.0\r\n"
_CRLF = b"\r\n"

# How long a message of an outbox waits for another write to go with.
SHARED_WRITE_WINDOW = 0.001


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


class Outbox:
    """Messages on one connection that nothing waits for (acknowledgements): each goes with
    the connection's next write, or when `window` seconds have passed without one. Nothing
    is held back from a closing connection (nats-py writes what is buffered before it
    disconnects, and `close` asks for the write at once)."""

    def __init__(self, nc: Client, window: float = SHARED_WRITE_WINDOW) -> None:
        self._nc = nc
        self._window = window
        self._timer: asyncio.TimerHandle | None = None

    async def publish(
        self, subject: str, payload: bytes = b"", reply: str = "", block: bytes | None = None
    ) -> None:
        await self._nc._send_command(_command(self._nc, subject, payload, reply, block))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._write)

    def close(self) -> None:
        """Ask for the write that is due now instead of when its window ends."""
        if self._timer is not None:
            self._timer.cancel()
            self._write()

    def _write(self) -> None:
        self._timer = None
        nc = self._nc
        queue = nc._flush_queue
        # Written meanwhile, or the flusher is signalled already: nothing to ask for.
        # Disconnected: nats-py writes its buffer first thing when it reconnects.
        if nc._pending_data_size and queue is not None and queue.empty() and nc.is_connected:
            queue.put_nowait(asyncio.get_running_loop().create_future())


def _command(nc: Client, subject: str, payload: bytes, reply: str, block: bytes | None) -> bytes:
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
    if block is None:
        return pub_cmd(subject, reply, payload)
    return hpub_cmd(subject, reply, block, payload)
