"""Pull requests whose messages are handed on as they arrive.

nats-py's `fetch(n)` returns when n messages have arrived or its timeout has passed: on a
quiet queue, the first message of a lingering fetch waits for the other n-1 or for the
timeout (a second, here), which made the intake's tail latency a second whenever a worker
was idle enough to find the queue empty. Here one pull request (`batch` messages, expiring
after `expires` seconds) is outstanding at a time; each message goes to `deliver` the moment
it arrives, and the next request goes out when this one is used up or has expired. It also
avoids the stall of `fetch(batch>1)` after an empty fetch (nats.py #986): there is no fetch.

Status messages end a request: 408 (expired; the server says how many it did not deliver),
409 (the server cut it: max waiting, leadership change, consumer deleted) and 503 (no
consumer answers: it or its stream is gone). Each request's reply subject carries its
number, so a late status of an earlier request never ends the current one.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client

from gsch.eventstore.inbox import Inbox

_STATUS = "Status"
_DESCRIPTION = "Description"
# How long past its expiry a request may stay silent before it is taken as lost (a server
# that went away without a word).
_GRACE = 2.0
_STOP_WAIT = 1.0


class Ended(enum.Enum):
    USED_UP = "used up"  # every message it asked for arrived
    EXPIRED = "expired"  # 408, or the server ended it (409 other than a deleted consumer)
    UNAVAILABLE = "unavailable"  # no consumer answers (503, 409 consumer deleted)
    LOST = "lost"  # no word from the server past the expiry
    STOPPED = "stopped"


class PullRequests:
    """Pull requests on one durable consumer, one at a time, delivering as messages arrive."""

    def __init__(
        self, nc: Client, stream: str, durable: str, deliver: Callable[[Any], Awaitable[None]]
    ) -> None:
        self._nc = nc
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._deliver = deliver
        self._inbox = Inbox(nc, self._on_message)
        self._number = 0
        self._remaining = 0
        self._ended = asyncio.Event()
        self._outcome = Ended.EXPIRED

    async def open(self) -> None:
        await self._inbox.open()

    async def close(self) -> None:
        await self._inbox.close()

    async def request(self, batch: int, expires: float, stop: asyncio.Event) -> Ended:
        """Ask for up to `batch` messages over the next `expires` seconds and deliver them as
        they come; return once the request has ended. When `stop` is set meanwhile, what is
        still on its way is delivered (the deliverer hands it back) until the request ends."""
        self._number += 1
        self._remaining = batch
        self._ended.clear()
        body = {"batch": batch, "expires": int(expires * 1e9)}
        await self._nc.publish(
            self._next_subject,
            json.dumps(body).encode(),
            reply=self._inbox.subject(str(self._number)),
        )
        ended = asyncio.ensure_future(self._ended.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([ended, stopping], timeout=expires + _GRACE,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if not ended.done() and stop.is_set():
                # Stopping: let what the server already assigned to us arrive (and be handed
                # back by the deliverer) rather than wait out the lease elsewhere; a long
                # request is not waited out.
                await asyncio.wait([ended], timeout=min(expires, _STOP_WAIT))
        finally:
            for task in (ended, stopping):
                task.cancel()
        if not self._ended.is_set():
            return Ended.STOPPED if stop.is_set() else Ended.LOST
        return self._outcome

    def _end(self, outcome: Ended) -> None:
        self._outcome = outcome
        self._ended.set()

    async def _on_message(self, msg: Any) -> None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is None:
            # Delivered first: the room it takes is taken before the next request is sized.
            await self._deliver(msg)
            self._remaining -= 1
            if self._remaining == 0:
                self._end(Ended.USED_UP)
            return
        if msg.subject.rsplit(".", 1)[-1] != str(self._number):
            return  # a late word about an earlier request
        deleted = status == "409" and "deleted" in str(headers.get(_DESCRIPTION, "")).lower()
        if status == "503" or deleted:
            self._end(Ended.UNAVAILABLE)
        elif status in ("408", "409", "404"):
            self._end(Ended.EXPIRED)
        # 100: a heartbeat (never asked for here); anything else: wait for the expiry.
