"""The worker process: competing workers take requests from the intake and retry queues,
dispatch them by level (GEdge's First/Fast/Base rounds), and drain cleanly on a stop.

What happens to one request is elsewhere: `intake.py` (decode, reject or accept),
`attempts.py` (claim, plan, commit), `blocked.py` (requests waiting for capacity),
`cancel.py` (cancel commands). This module holds the loops, the leases and the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.consumers import LeaseKeeper, Room, WorkItem, consume, pull
from gsch.eventstore.store import EventStore, EventTooLargeError, StoredEvent
from gsch.eventstore.subjects import EVENTS_STREAM, INTAKE_STREAM, request_events_of_type
from gsch.metrics import CANCELS
from gsch.model.decisions import SCHEDULABLE
from gsch.model.events import Placement, RequestRequeued, decode_event
from gsch.model.request import QueueLevel, Request
from gsch.model.retry import RetryPolicy
from gsch.model.tenancy import Tenancy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.runtime.config import Config
from gsch.scheduler.attempts import Attempts
from gsch.scheduler.blocked import BlockedRequests, Parked
from gsch.scheduler.cancel import InvalidCancel, cancel_request, decode_cancel
from gsch.scheduler.dispatch import Job, LevelDispatcher
from gsch.scheduler.intake import Intake
from gsch.scheduler.intent_bus import CommitIntents
from gsch.scheduler.rules import intake_rules, planner_rules, with_tenancy

log = logging.getLogger(__name__)

INTAKE_CONSUMER = "gsch-intake"
RETRY_CONSUMER = "gsch-retries"
CANCEL_CONSUMER = "gsch-cancels"
_RECENT_CANCELS = 10_000  # ids remembered so a parked retry of a cancelled request is dropped


class Worker:
    def __init__(
        self, config: Config, store: EventStore, snapshot: ClusterSnapshot, name: str
    ) -> None:
        self.config = config
        self.store = store
        self.snapshot = snapshot
        self.name = name
        self.planner = planner_rules(config)
        retry = RetryPolicy.from_config(config.queue)
        self.attempts = Attempts(
            store, snapshot, name, self.planner, retry, config.worker.max_conflict_retries
        )
        self.intake = Intake(
            store, self.attempts, intake_rules(config), retry,
            config.queue.cancel_before_arrival_seconds,
        )  # fmt: skip
        # What this process holds: queued by level, running, or parked as blocked. The room
        # (queued + running) bounds what the pull loops fetch; parked messages do not count.
        options = config.worker
        self.keeper = LeaseKeeper(store.lease_seconds)
        self.room = Room(options.max_in_flight + options.max_queued)
        # A stop ends within the lease: running attempts get half of it to finish.
        self.dispatcher = LevelDispatcher(
            config.queue.per_level, options.max_in_flight, self.room, store.lease_seconds / 2
        )
        queue = config.queue
        self.blocked = BlockedRequests(
            snapshot, self._dry_plan, self._wake, queue.blocked_recheck_seconds,
            limit=queue.max_parked, max_blocked_seconds=queue.max_blocked_seconds,
            expire=self._expire,
        )  # fmt: skip
        self._intake_rules = self.intake.rules
        # What competing workers' batches in flight are about to reserve, and telling them
        # what ours are: fewer batches refused for one stale decision (see `intents.py`).
        self.intents = CommitIntents(store.nc, snapshot, name) if options.intents else None
        if self.intents is not None:
            store.announce_commits(self.intents)
        self._recent_cancels: OrderedDict[str, None] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    def use_tenancy(self, tenancy: Tenancy) -> None:
        """Plan and admit with the projects and workspaces the log declares now."""
        self.planner = planner_rules(self.config, tenancy)
        self.attempts.planner = self.planner
        self.intake.rules = with_tenancy(self._intake_rules, tenancy)

    async def run(self, stop: asyncio.Event) -> None:
        """Take work until `stop`, then drain: queued and parked messages are handed back at
        once (another worker takes them without waiting for a lease), running attempts finish.
        """
        options = self.config.worker
        self._stop = stop
        if self.intents is not None:
            await self.intents.start()
        keeping = asyncio.create_task(self.keeper.run())
        cancels = self.store.follow(request_events_of_type("RequestCancelled"), self._cancelled)
        await cancels.start(after_seq=await self.store.last_seq())
        blocked_stop = asyncio.Event()
        blocked = asyncio.create_task(self.blocked.run(blocked_stop))
        batch = options.fetch_batch
        try:
            await asyncio.gather(
                pull(self.store, INTAKE_STREAM, INTAKE_CONSUMER, self._deliver_intake, stop,
                     room=self.room, batch=batch),
                pull(self.store, EVENTS_STREAM, RETRY_CONSUMER, self._deliver_retry, stop,
                     room=self.room, batch=batch),
                consume(self.store, INTAKE_STREAM, CANCEL_CONSUMER, self.on_cancel, stop,
                        max_in_flight=64, batch=64),
                self.dispatcher.run(stop),
            )  # fmt: skip
        finally:
            blocked_stop.set()
            await blocked
            await cancels.stop()
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
            if self.intents is not None:
                await self.intents.stop()

    def _queue(self, item: WorkItem, level: QueueLevel, run: Callable[[], Awaitable[None]]) -> None:
        self.room.take()
        self.keeper.hold(item)
        self.dispatcher.put(Job(item, level, run))

    async def _deliver_intake(self, item: WorkItem) -> None:
        if self._stop.is_set():
            await item.nak()
            return
        decoded, level = self.intake.decode(item)
        self._queue(item, level, partial(self.intake.take, item, decoded))

    async def _deliver_retry(self, item: WorkItem) -> None:
        try:
            event = decode_event(item.data)
        except ValueError:
            await item.ack()
            return
        if not isinstance(event, RequestRequeued):
            await item.ack()
            return
        if self._stop.is_set():
            await item.nak()
            return
        wait = event.not_before - time.time()
        if wait > 0.001 and not event.blocked:
            await item.nak(delay=wait)
            return
        retry = partial(self.on_retry, item, event.level, event.blocked, blocked_since=event.at)
        self._queue(item, event.level, retry)

    def _dry_plan(self, request: Request) -> tuple[Placement, ...]:
        return plan(PROFILES[request.policy], request, self.snapshot, self.planner).placements

    def _wake(self, parked: Parked) -> None:
        if self._stop.is_set():
            self._in_background(parked.item.nak())
            return
        self._queue(
            parked.item, parked.level, partial(self.on_retry, parked.item, parked.level, False)
        )

    def _expire(self, parked: Parked) -> None:
        """A parked request waited longer than allowed: fail it (as a job, under its lease)."""
        if self._stop.is_set():
            self._in_background(parked.item.nak())
            return
        self._queue(parked.item, parked.level, partial(self._give_up_blocked, parked.item))

    async def _give_up_blocked(self, item: WorkItem) -> None:
        request_id = item.request_id
        state = await self.store.load_request(request_id) if request_id else None
        if state is not None and state.queued_seq == item.seq and state.state in SCHEDULABLE:
            last = state.reasons[-1] if state.reasons else "nothing could hold it"
            limit = self.config.queue.max_blocked_seconds
            await self.attempts.give_up(state, f"blocked for over {limit:g} s; {last}")
        await item.ack()

    def _cancelled(self, stored: StoredEvent) -> None:
        """A request was cancelled: a parked message of it is settled now, not at a wake."""
        request_id = stored.request_id
        if request_id is None:
            return
        self._recent_cancels[request_id] = None
        while len(self._recent_cancels) > _RECENT_CANCELS:
            self._recent_cancels.popitem(last=False)
        parked = self.blocked.take(request_id)
        if parked is not None:
            self._in_background(parked.item.ack())

    def _in_background(self, settle: Coroutine[Any, Any, None]) -> None:
        """Settle a message from a synchronous callback (the snapshot's, the follower's)."""
        task = asyncio.create_task(settle)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_cancel(self, item: WorkItem) -> None:
        """A cancel command published on `gsch.cancel`."""
        try:
            command = decode_cancel(item.data)
        except InvalidCancel as exc:
            CANCELS.labels(result="invalid").inc()
            log.warning("cancel command refused", extra={"seq": item.seq, "reason": str(exc)})
        else:
            outcome = await cancel_request(
                self.store, command.request_id, command.reason,
                before_arrival=command.before_arrival,
            )  # fmt: skip
            CANCELS.labels(result="cancelled" if outcome.cancelled else "noop").inc()
            log.info("cancel", extra={"request_id": outcome.request_id, "result": outcome.message})
        await item.ack()

    # --- retries -------------------------------------------------------------------------

    async def on_retry(
        self, item: WorkItem, level: QueueLevel, blocked: bool, blocked_since: float = 0.0
    ) -> None:
        """A retry that is due, at the level its requeue event gave it. A blocked one (nothing
        could hold it) is tried only if it fits on the snapshot now; otherwise it is parked,
        at that level, until capacity it could use appears: failed once it has been blocked
        for longer than allowed, handed back to the queue while this worker's parking is
        full."""
        request_id = item.request_id
        if request_id is None:
            await item.ack()
            return
        state = await self.store.load_request(request_id)
        if state.queued_seq != item.seq or state.state not in SCHEDULABLE:
            await item.ack()  # moved on meanwhile (cancelled, taken over): not ours
            return
        request = state.request
        if blocked and request is not None and not self._dry_plan(request):
            if request.request_id in self._recent_cancels:
                await item.ack()
                return
            if self.blocked.expired(blocked_since):
                await self._give_up_blocked(item)
                return
            if self.blocked.full:
                await item.nak(delay=self.config.queue.blocked_recheck_seconds)
                return
            self.blocked.park(Parked(item, request, level, blocked_since))
            return
        try:
            await self.attempts.schedule(state)
        except EventTooLargeError as exc:  # refused before sending: retrying cannot help
            state = await self.store.load_request(request_id)
            await self.attempts.give_up(state, f"its events would not fit in the log ({exc})")
        await item.ack()
