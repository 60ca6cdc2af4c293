"""Answers to the event store's appends (atomic batches and single messages), on one
subscription per connection.

nats-py's `request` publishes only once it runs, so a request cannot be put on the wire
before the publishes that must follow it without awaiting its answer first. Here an answer
is expected under a token before anything is sent, the messages go out in order with reply
subjects under this connection's inbox, and each answer is awaited when it is needed. A
single append's answer comes the same way: `request` would also start a timer task and draw
a fresh token for each.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
from nats.aio.client import Client

from gsch.eventstore.inbox import Inbox

_STATUS = "Status"


class BatchReplies:
    def __init__(self, nc: Client) -> None:
        self._inbox = Inbox(nc, self._on_reply)
        self._waiting: dict[str, asyncio.Future[bytes]] = {}

    async def open(self) -> None:
        await self._inbox.open()

    async def close(self) -> None:
        await self._inbox.close()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    def subject(self, token: str) -> str:
        return self._inbox.subject(token)

    def expect(self, token: str) -> asyncio.Future[bytes]:
        """A future for the answer to the message sent with `subject(token)` as its reply."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return future

    def forget(self, token: str) -> None:
        future = self._waiting.pop(token, None)
        if future is None:
            return
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # an answer nobody awaited (the batch failed before it)

    async def _on_reply(self, msg: Any) -> None:
        future = self._waiting.get(msg.subject.rsplit(".", 1)[-1])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(_STATUS) == "503" and not msg.data:
            future.set_exception(nats.errors.NoRespondersError())  # no stream takes it
        else:
            future.set_result(msg.data)
