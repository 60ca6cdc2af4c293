"""Competing consumers: bounded-concurrency pull loops over durable consumers.

Handles the nats-py fetch pitfalls (reference/jetstream-notes §5): both kinds of timeout,
a consumer that vanished (503 on every call: back off, never spin), and the stall of
`fetch(batch>1)` right after an empty fetch (#986: fetch one message after an empty fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors

from gsch.eventstore.store import MSG_ID, EventStore

log = logging.getLogger(__name__)


class WorkItem:
    """One delivered message of a work queue, with its lease operations."""

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        metadata = msg.metadata
        self.seq = int(metadata.sequence.stream)
        self.deliveries = int(metadata.num_delivered)
        self.published_ns = int(metadata.timestamp.timestamp() * 1e9) if metadata.timestamp else 0
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.msg_id: str | None = (msg.headers or {}).get(MSG_ID)

    async def ack(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.nak(delay=delay)

    async def in_progress(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.in_progress()


class _LeaseKeeper:
    """Keeps the lease of every in-flight item alive with in-progress acknowledgements, from
    one task for the whole loop rather than a timer per message."""

    def __init__(self, lease_seconds: float) -> None:
        self.every = lease_seconds / 3
        self.items: dict[WorkItem, float] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            due = time.monotonic() - self.every
            for item, since in list(self.items.items()):
                if since <= due:
                    await item.in_progress()


Handler = Callable[[WorkItem], Awaitable[None]]


async def consume(
    store: EventStore,
    stream: str,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    *,
    max_in_flight: int,
    batch: int,
    lease_seconds: float,
) -> None:
    """Pull from a durable consumer and run `handler` on each message until `stop` is set.

    While a handler runs, its message's lease is kept alive; a process that dies or hangs
    stops renewing it and the message goes to another worker after `lease_seconds`.
    In-flight handlers are awaited before returning (graceful drain); unfinished work is
    simply not acked and comes back to another worker after the lease.
    """
    subscription = await store.js.pull_subscribe_bind(durable=durable, stream=stream)
    slots = asyncio.Semaphore(max_in_flight)
    running: set[asyncio.Task[None]] = set()
    next_batch = 1
    backoff = 0.1

    keeper = _LeaseKeeper(lease_seconds)
    keeping = asyncio.create_task(keeper.run())

    async def run(item: WorkItem) -> None:
        keeper.items[item] = time.monotonic()
        try:
            await handler(item)
        except Exception:
            # A handler bug must not kill the loop; the message is redelivered after the lease.
            log.exception("work item failed", extra={"subject": item.subject, "seq": item.seq})
        finally:
            del keeper.items[item]
            slots.release()

    try:
        while not stop.is_set():
            wanted = max(1, min(next_batch, max_in_flight - len(running)))
            try:
                messages = await subscription.fetch(wanted, timeout=1.0)
            except TimeoutError:  # nats.errors.TimeoutError and the bare asyncio one
                next_batch = 1
                continue
            except (nats.js.errors.ServiceUnavailableError, nats.js.errors.NotFoundError) as exc:
                log.warning("consumer unavailable", extra={"durable": durable, "error": repr(exc)})
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except nats.errors.Error as exc:
                log.warning("fetch failed", extra={"durable": durable, "error": repr(exc)})
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            next_batch = batch
            for message in messages:
                await slots.acquire()
                task = asyncio.create_task(run(WorkItem(message)))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
