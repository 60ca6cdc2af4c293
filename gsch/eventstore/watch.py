"""Follow the event log in order from a sequence, with an ordered push consumer.

Ordered consumers re-create themselves from the last delivered sequence on gaps and server
restarts, and are the fastest way to read the log from Python (reference/jetstream-notes §3).
The callback must be cheap: it runs on the subscription's delivery task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy

from gsch.eventstore.store import MSG_ID, EventStore, StoredEvent
from gsch.model.events import decode_event

log = logging.getLogger(__name__)

Handler = Callable[[StoredEvent], None]


class Follower:
    """An ordered consumer delivering decoded events after `after_seq` to `handler`."""

    def __init__(self, store: EventStore, subject: str, handler: Handler) -> None:
        self._store = store
        self._subject = subject
        self._handler = handler
        self._subscription: Any = None
        self.undecodable = 0

    async def start(self, after_seq: int = 0) -> None:
        if after_seq > 0:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        self._subscription = await self._store.js.subscribe(
            self._subject,
            stream=self._store.stream,
            cb=self._deliver,
            ordered_consumer=True,
            idle_heartbeat=2.0,
            config=config,
        )

    async def _deliver(self, msg: Any) -> None:
        seq = int(msg.metadata.sequence.stream)
        try:
            event = decode_event(msg.data)
        except msgspec.DecodeError as exc:
            # Only gsch writes here, but a foreign publisher must not stop the reader.
            self.undecodable += 1
            log.error("undecodable event skipped", extra={"seq": seq, "error": str(exc)})
            return
        headers = msg.headers or {}
        self._handler(StoredEvent(seq, msg.subject, headers.get(MSG_ID), event))

    async def stop(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.unsubscribe()
