"""Competing consumers: bounded pull loops over durable consumers, and the leases of what they
hold.

Messages are pulled with requests that hand each message on as it arrives (`pulls.py`; not
nats-py's `fetch`, whose first message waits for the whole batch on a quiet queue). A
consumer or stream deleted under a running process (503/404 on every request) has the
consumer declared again where this process may (never a stream), with backoff, never a spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors

from gsch.eventstore.delivery import position_of
from gsch.eventstore.pulls import Ended, PullRequests
from gsch.eventstore.store import MSG_ID, EventStore
from gsch.eventstore.streams import StreamMissingError, StreamsError, apply_declarations
from gsch.eventstore.subjects import request_key_of

log = logging.getLogger(__name__)


class WorkItem:
    """One delivered message of a work queue, with its lease operations. While a keeper holds
    it, its lease is renewed; acknowledging it in any way ends that."""

    def __init__(self, msg: Any) -> None:
        self._msg = msg
        self._keeper: LeaseKeeper | None = None
        # Read from the reply subject as every follower reads it (nats-py's `metadata`
        # builds a datetime and two dataclasses per message for the same three numbers).
        position = position_of(msg.reply)
        self.seq = position.seq
        self.deliveries = position.deliveries
        self.published_ns = _published_ns(position.stored_at)
        self.subject: str = msg.subject
        self.data: bytes = msg.data
        self.msg_id: str | None = (msg.headers or {}).get(MSG_ID)

    @property
    def request_id(self) -> str | None:
        """The request an event-log message belongs to (None: not a request's event)."""
        key = request_key_of(self.subject)
        return key.request_id if key is not None else None

    def _settled(self) -> None:
        if self._keeper is not None:
            self._keeper.release(self)

    async def ack(self) -> None:
        self._settled()
        with contextlib.suppress(nats.errors.Error):
            await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Hand the message back: redelivered (to any process) now, or after `delay`."""
        self._settled()
        with contextlib.suppress(nats.errors.Error):
            await self._msg.nak(delay=delay)

    def abandon(self) -> None:
        """Stop renewing the lease without a word: the server redelivers the message when
        the lease lapses (what happens anyway if this process dies)."""
        self._settled()

    async def in_progress(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._msg.in_progress()


def _published_ns(stored_at: float) -> int:
    """When the message was stored, in nanoseconds, as gsch has always read it (through
    nats-py's datetime, so to the microsecond): an id generated for a request that came
    without one is made of it, and a redelivery must make the same id whatever version of
    gsch reads it."""
    when = datetime.datetime.fromtimestamp(stored_at, datetime.UTC)
    return int(when.timestamp() * 1e9)


class LeaseKeeper:
    """Keeps the lease of every held item alive with in-progress acknowledgements, from one
    task for the whole process rather than a timer per message. Items are held from delivery
    until they are acknowledged: waiting for a slot, running, or parked as blocked."""

    def __init__(self, lease_seconds: float) -> None:
        self.every = lease_seconds / 3
        self.items: dict[WorkItem, float] = {}

    def hold(self, item: WorkItem) -> None:
        item._keeper = self
        self.items[item] = time.monotonic()

    def release(self, item: WorkItem) -> None:
        self.items.pop(item, None)
        item._keeper = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            due = time.monotonic() - self.every
            for item, since in list(self.items.items()):
                if since <= due and item in self.items:
                    await item.in_progress()


class Room:
    """How many more messages a process takes: what it holds (queued or running) against a
    limit. Pull loops fetch only into free room, so a busy process leaves messages to others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Event()

    def free(self) -> int:
        return self.limit - self.used

    def take(self) -> None:
        self.used += 1

    def give(self) -> None:
        self.used -= 1
        self._freed.set()

    async def wait(self) -> None:
        while self.free() <= 0:
            self._freed.clear()
            await self._freed.wait()


Deliver = Callable[[WorkItem], Awaitable[None]]
Handler = Deliver


async def pull(
    store: EventStore,
    stream: str,
    durable: str,
    deliver: Deliver,
    stop: asyncio.Event,
    *,
    room: Room,
    batch: int,
    expires: float = 1.0,
) -> None:
    """Pull from a durable consumer into free `room` and hand each message to `deliver` as
    it arrives (which takes the room and gives it back when done) until `stop` is set."""
    if not await _exists(store, stream, durable, stop):
        return
    requests = PullRequests(store.nc, stream, durable, lambda msg: deliver(WorkItem(msg)))
    await requests.open()
    backoff = 0.1
    try:
        while not stop.is_set():
            if room.free() <= 0:
                await _wait_or_stop(stop, room.wait())
                if stop.is_set():
                    break
            wanted = max(1, min(batch, room.free()))
            try:
                ended = await requests.request(wanted, expires, stop)
            except nats.errors.Error as exc:
                log.warning("pull failed", extra={"durable": durable, "error": repr(exc)})
                ended = Ended.LOST
            if ended is Ended.UNAVAILABLE:
                # Deleted under us (or its stream): declare it again, then back off.
                log.warning("consumer unavailable", extra={"durable": durable})
                await _redeclare(store, durable)
            if ended in (Ended.UNAVAILABLE, Ended.LOST):
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
    finally:
        await requests.close()


async def consume(
    store: EventStore,
    stream: str,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    *,
    max_in_flight: int,
    batch: int,
) -> None:
    """Pull from a durable consumer and run `handler` on each message until `stop` is set.

    While a handler runs, its message's lease is kept alive; a process that dies or hangs
    stops renewing it and the message goes to another worker after the store's lease.
    In-flight handlers are awaited before returning (graceful drain).
    """
    room = Room(max_in_flight)
    keeper = LeaseKeeper(store.lease_seconds)
    running: set[asyncio.Task[None]] = set()

    async def run(item: WorkItem) -> None:
        try:
            await handler(item)
        except Exception:
            # A handler bug must not kill the loop; the message is redelivered after the lease.
            log.exception("work item failed", extra={"subject": item.subject, "seq": item.seq})
        finally:
            item.abandon()  # settled by the handler already, or left to the lease
            room.give()

    async def deliver(item: WorkItem) -> None:
        room.take()
        keeper.hold(item)
        task = asyncio.create_task(run(item))
        running.add(task)
        task.add_done_callback(running.discard)

    keeping = asyncio.create_task(keeper.run())
    try:
        await pull(store, stream, durable, deliver, stop, room=room, batch=batch)
    finally:
        if running:
            # A shutdown ends within the lease: handlers still running after half of it are
            # cancelled; their messages come back after the lease.
            _, late = await asyncio.wait(set(running), timeout=store.lease_seconds / 2)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping


async def _exists(store: EventStore, stream: str, durable: str, stop: asyncio.Event) -> bool:
    """Wait until the durable consumer exists, declaring it again while it is missing;
    False if stopped first."""
    backoff = 0.1
    while not stop.is_set():
        try:
            await store.js.consumer_info(stream, durable)
            return True
        except (nats.js.errors.NotFoundError, nats.js.errors.ServiceUnavailableError) as exc:
            log.warning("consumer missing", extra={"durable": durable, "error": repr(exc)})
            await _redeclare(store, durable)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("consumer not reachable", extra={"durable": durable, "error": repr(exc)})
        await _sleep_or_stop(stop, backoff)
        backoff = min(backoff * 2, 5.0)
    return False


async def _redeclare(store: EventStore, durable: str) -> None:
    """Declare a deleted consumer again if this process may; a deleted stream is not
    re-created (StreamMissingError ends the process: see guard.py)."""
    if store.declarations is None:
        return
    if not store.manages_streams:
        log.error(
            "consumer missing; only an admin can declare it again: `gsch streams apply`",
            extra={"durable": durable},
        )
        return
    try:
        report = await apply_declarations(store.nc, store.declarations, create_streams=False)
    except StreamMissingError:
        raise
    except (StreamsError, nats.errors.Error) as exc:
        log.warning("re-declaring streams failed", extra={"durable": durable, "error": repr(exc)})
        return
    for line in report.lines:
        if not line.endswith("unchanged"):
            log.warning("streams re-declared: %s", line)


async def _wait_or_stop(stop: asyncio.Event, waiting: Awaitable[None]) -> None:
    waiter = asyncio.ensure_future(waiting)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, stopper):
        task.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
