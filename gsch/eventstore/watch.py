"""Follow the event log in order from a sequence, with an ordered push consumer.

Ordered consumers re-create themselves from the last delivered sequence on gaps and server
restarts, and are the fastest way to read the log from Python (reference/jetstream-notes §3).
The callback must be cheap: it runs on the subscription's delivery task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from gsch.aio import reraise_swallowed_cancel
from gsch.eventstore.delivery import position_of
from gsch.eventstore.store import MSG_ID, EventStore, StoredEvent
from gsch.eventstore.subjects import stream_of
from gsch.model.events import decode_event

log = logging.getLogger(__name__)

Handler = Callable[[StoredEvent], None]


class Follower:
    """An ordered consumer delivering decoded events after `after_seq` to `handler`, in
    order, each once.

    nats-py does not reset an ordered consumer whose server went away (nats.py #510): the
    subscription just goes quiet. A watchdog compares the log's newest matching sequence with
    the last one delivered and, when delivery has stalled behind it, subscribes again from
    where it stopped. Stalled means the server sends nothing more: a follower that is only
    behind (a busy or niced process: messages sent, not yet read) is left alone, since
    subscribing again would have the server send all of those once more.
    """

    def __init__(
        self,
        store: EventStore,
        subject: str,
        handler: Handler,
        *,
        on_skip: Callable[[int], None] | None = None,
        check_every: float = 2.0,
    ) -> None:
        self._store = store
        self._subject = subject
        self._handler = handler
        self._on_skip = on_skip
        self._check_every = check_every
        self._subscription: Any = None
        self._watchdog: asyncio.Task[None] | None = None
        self.last_seq = 0
        self.undecodable = 0
        self.delivered = 0  # events handed to the handler (a start-up measures its replay)
        self.resubscriptions = 0

    async def start(self, after_seq: int = 0) -> None:
        self.last_seq = after_seq
        await self._subscribe()
        self._watchdog = asyncio.create_task(self._watch())

    async def _subscribe(self) -> None:
        if self.last_seq > 0:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_seq + 1
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        self._subscription = await self._store.js.subscribe(
            self._subject,
            stream=stream_of(self._subject),
            cb=self._deliver,
            ordered_consumer=True,
            idle_heartbeat=2.0,
            config=config,
        )

    async def _watch(self) -> None:
        previous = self.last_seq
        while True:
            await asyncio.sleep(self._check_every)
            stalled = self.last_seq == previous
            previous = self.last_seq
            if not stalled:
                continue
            try:
                newest = await self._store.last(self._subject)
                if newest is None or newest.seq <= self.last_seq or await self._sending():
                    continue
                log.warning(
                    "follower stalled; subscribing again",
                    extra={"subject": self._subject, "seq": self.last_seq, "newest": newest.seq},
                )
                old, self._subscription = self._subscription, None
                if old is not None:
                    with contextlib.suppress(nats.errors.Error):
                        await old.unsubscribe()
                self.resubscriptions += 1
                await self._subscribe()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("follower check failed", extra={"error": repr(exc)})
            finally:
                reraise_swallowed_cancel()  # `continue` included

    async def _sending(self) -> bool:
        """Whether the server has sent this consumer events past the last one handled (they
        are on their way, or waiting in the client). A consumer the server no longer knows
        (it restarted) sends nothing; a server that does not say is taken to send nothing
        (subscribing again is always safe, only wasteful)."""
        if self._subscription is None:
            return False
        try:
            info = await self._subscription.consumer_info()
        except (nats.errors.Error, TimeoutError):
            return False
        return int(info.delivered.stream_seq) > self.last_seq

    async def _deliver(self, msg: Any) -> None:
        seq, _, stored_at, _ = position_of(msg.reply)
        if seq <= self.last_seq:
            return  # already delivered before a re-subscription
        self.last_seq = seq
        try:
            event = decode_event(msg.data)
        except msgspec.DecodeError as exc:
            # Only gsch writes here, but a foreign publisher must not stop the reader.
            self.undecodable += 1
            log.error("undecodable event skipped", extra={"seq": seq, "error": str(exc)})
            if self._on_skip is not None:
                self._on_skip(seq)
            return
        headers = msg.headers or {}
        self.delivered += 1
        self._handler(StoredEvent(seq, msg.subject, headers.get(MSG_ID), event, stored_at))

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
