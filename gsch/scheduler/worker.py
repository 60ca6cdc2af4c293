"""The worker: competing processes take requests from the intake and retry queues, claim them
with a conditional append, plan on the in-memory cluster snapshot, and commit the placement
together with the capacity reservation as one atomic, conditional batch.

One winner: the claim is conditional on the request's history, the commit on the request's
history since the claim *and* on each chosen node's history since the snapshot saw it. A lost
race on a node means wait until the snapshot has the event that beat us, then plan again; a lost
race on the request means another worker owns it now, so stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.config import Config
from gsch.eventstore.consumers import LeaseKeeper, Room, WorkItem, consume, pull
from gsch.eventstore.ids import new_msg_id
from gsch.eventstore.store import (
    Append,
    ConflictError,
    EventStore,
    KnownStaleError,
    StoredEvent,
)
from gsch.eventstore.subjects import (
    ALL_CLUSTER_EVENTS,
    EVENTS_STREAM,
    INTAKE_STREAM,
    node_history,
    node_subject,
    request_events_of_type,
    request_history,
    request_id_of,
    request_subject,
)
from gsch.eventstore.watch import Follower
from gsch.metrics import (
    ATTEMPT_DURATION,
    CANCELS,
    COMMIT_CONFLICTS,
    DUPLICATE_SUBMISSIONS,
    E2E_DURATION,
    EVENT_APPENDS,
    REQUESTS_REJECTED,
    RETRIES,
    SCHEDULE_ATTEMPTS,
)
from gsch.model.events import (
    CapacityReserved,
    Event,
    Placement,
    PlacementCommitted,
    RequestAccepted,
    RequestClaimed,
    RequestFailed,
    RequestRejected,
    RequestRequeued,
    decode_event,
)
from gsch.model.intake import Rejection, generated_request_id
from gsch.model.request import QueueLevel, Request
from gsch.model.states import RequestState, State
from gsch.policies.framework import fits_now, plan, plan_avoiding
from gsch.policies.registry import PROFILES
from gsch.scheduler.blocked import BlockedRequests, Parked
from gsch.scheduler.cancel import InvalidCancel, cancel_request, decode_cancel
from gsch.scheduler.decide import RetryPolicy, admit, intake_rules, planner_rules
from gsch.scheduler.dispatch import Job, LevelDispatcher

log = logging.getLogger(__name__)

INTAKE_CONSUMER = "gsch-intake"
RETRY_CONSUMER = "gsch-retries"
CANCEL_CONSUMER = "gsch-cancels"
_SCHEDULABLE = (State.QUEUED, State.SCHEDULING)


class Worker:
    def __init__(
        self, config: Config, store: EventStore, snapshot: ClusterSnapshot, name: str
    ) -> None:
        self.config = config
        self.store = store
        self.snapshot = snapshot
        self.name = name
        self.rules = intake_rules(config.intake)
        self.planner = planner_rules(config)
        self.retry_policy = RetryPolicy.from_config(config.queue)
        self.lease = config.queue.lease_seconds
        # One commit at a time per node from this process: concurrent attempts here would
        # only race each other for the same expected sequence.
        self._node_locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Requests whose commit is on its way, for re-validation just before sending.
        self._requests_in_commit: dict[str, Request] = {}
        store.precheck = self._revalidate_reservation
        store.catch_up = self._catch_up_snapshot
        # What this process holds: queued by level, running, or parked as blocked. The room
        # (queued + running) bounds what the pull loops fetch; parked messages do not count.
        options = config.worker
        self.keeper = LeaseKeeper(self.lease)
        self.room = Room(options.max_in_flight + options.max_queued)
        self.dispatcher = LevelDispatcher(config.queue.per_level, options.max_in_flight, self.room)
        self.blocked = BlockedRequests(
            snapshot, self._dry_plan, self._wake, config.queue.blocked_recheck_seconds
        )
        self._recent_cancels: OrderedDict[str, None] = OrderedDict()
        self._background: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()

    async def _catch_up_snapshot(self) -> None:
        """Wait until the snapshot holds every cluster event the log has now."""
        newest = await self.store.last(ALL_CLUSTER_EVENTS)
        if newest is not None:
            await self.snapshot.wait_for(newest.seq, timeout=5.0)

    def _revalidate_reservation(self, item: Append) -> Append | None:
        """Just before a grouped commit goes out: if the snapshot has meanwhile seen newer
        events of a chosen node (another worker's reservations), check the placement again on
        the node's state as the log now has it. Still fits: send it conditional on that newer
        sequence (the server then guarantees the node is exactly what was checked). No longer
        fits: None, and the attempt plans again."""
        event = item.event
        if not isinstance(event, CapacityReserved) or item.expect_seq is None:
            return item
        cluster = self.snapshot.clusters.get(event.cluster)
        node = cluster.nodes.get(event.node) if cluster else None
        if node is None or node.last_seq == item.expect_seq:
            return item
        request = self._requests_in_commit.get(event.request_id)
        placement = Placement(event.cluster, event.node, event.amount)
        if request is None or not fits_now(
            PROFILES[request.policy], request, node, placement.amount
        ):
            return None
        return replace(item, expect_seq=node.last_seq)

    async def run(self, stop: asyncio.Event) -> None:
        """Take work until `stop`, then drain: queued and parked messages are handed back at
        once (another worker takes them without waiting for a lease), running attempts finish.
        """
        options = self.config.worker
        self._stop = stop
        keeping = asyncio.create_task(self.keeper.run())
        cancels = Follower(self.store, request_events_of_type("RequestCancelled"), self._cancelled)
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
                        max_in_flight=64, batch=64, lease_seconds=self.lease),
                self.dispatcher.run(stop),
            )  # fmt: skip
        finally:
            blocked_stop.set()
            await blocked
            await cancels.stop()
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping

    def _queue(self, item: WorkItem, level: QueueLevel, run: Callable[[], Awaitable[None]]) -> None:
        self.room.take()
        self.keeper.hold(item)
        self.dispatcher.put(Job(item, level, run))

    async def _deliver_intake(self, item: WorkItem) -> None:
        if self._stop.is_set():
            await item.nak()
            return
        fallback_id = generated_request_id(item.seq, item.published_ns)
        decoded = admit(item.data, self.rules, fallback_id)
        level = (
            self.retry_policy.level(decoded, 0) if isinstance(decoded, Request) else QueueLevel.BASE
        )
        self._queue(item, level, partial(self.on_intake, item, decoded))

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
        self._queue(item, event.level, partial(self.on_retry, item, event.level, event.blocked))

    def _dry_plan(self, request: Request) -> tuple[Placement, ...]:
        return plan(PROFILES[request.policy], request, self.snapshot, self.planner).placements

    def _wake(self, parked: Parked) -> None:
        if self._stop.is_set():
            self._in_background(parked.item.nak())
            return
        self._queue(
            parked.item, parked.level, partial(self.on_retry, parked.item, parked.level, False)
        )

    def _cancelled(self, stored: StoredEvent) -> None:
        """A request was cancelled: a parked message of it is settled now, not at a wake."""
        request_id = request_id_of(stored.subject)
        self._recent_cancels[request_id] = None
        while len(self._recent_cancels) > 10_000:
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
            outcome = await cancel_request(self.store, command.request_id, command.reason)
            CANCELS.labels(result="cancelled" if outcome.cancelled else "noop").inc()
            log.info("cancel", extra={"request_id": outcome.request_id, "result": outcome.message})
        await item.ack()

    # --- appends -------------------------------------------------------------------------

    async def _append_to_request(self, state: RequestState, event: Event) -> int:
        item = Append(
            subject=request_subject(state.request_id, type(event).__name__),
            event=event,
            msg_id=new_msg_id(state.request_id, event),
            expect_seq=state.last_seq,
            expect_scope=request_history(state.request_id),
        )
        seq = await self.store.append(item)
        EVENT_APPENDS.labels(type=type(event).__name__).inc()
        return seq

    # --- intake --------------------------------------------------------------------------

    async def on_intake(self, item: WorkItem, decoded: Request | Rejection) -> None:
        if isinstance(decoded, Rejection):
            await self._reject(decoded, item)
        else:
            await self._accept(decoded, item)
        await item.ack()

    async def _reject(self, rejection: Rejection, item: WorkItem) -> None:
        state = RequestState(request_id=rejection.request_id)
        event = RequestRejected(
            at=time.time(),
            request_id=rejection.request_id,
            reason=rejection.reason,
            field=rejection.field,
            form=rejection.form,
            intake_seq=item.seq,
            excerpt=item.data[:512].decode("utf-8", "replace"),
        )
        try:
            await self._append_to_request(state, event)
        except ConflictError:
            existing = await self.store.load_request(rejection.request_id)
            if existing.intake_seq != item.seq:
                DUPLICATE_SUBMISSIONS.inc()
            return
        REQUESTS_REJECTED.labels(field=rejection.field.split(".")[0].split("[")[0]).inc()
        log.info(
            "request rejected",
            extra={"request_id": rejection.request_id, "reason": rejection.reason},
        )

    async def _accept(self, request: Request, item: WorkItem) -> None:
        """First attempt: the acceptance and the attempt's outcome in one atomic append,
        conditional on the request's subject being empty. That condition is the claim (the
        first writer wins), so no separate RequestClaimed is written: nobody could ever observe
        the request between the two. A new request costs one round trip to the log."""
        if item.deliveries > 1:
            # Redelivered after a lease expired: the log may already hold this request.
            known = await self.store.load_request(request.request_id)
            if known.state is not State.NEW:
                await self._continue_known(known, item)
                return
        now = time.time()
        accepted = RequestAccepted(
            at=now, request=request, intake_seq=item.seq, level=self.retry_policy.level(request, 0)
        )
        state = RequestState(request_id=request.request_id)
        if await self._attempt(state, request, prefix=(accepted,), accepted_at=now):
            return
        known = await self.store.load_request(request.request_id)
        if known.state is State.NEW:
            raise RuntimeError(f"{request.request_id}: lost a race to an empty history")
        await self._continue_known(known, item)

    async def _continue_known(self, known: RequestState, item: WorkItem) -> None:
        """The request's subject was not empty: this very message delivered before (finish
        what the previous holder left), a second publication of a known request id, or a
        request cancelled before it arrived."""
        if known.state is State.CANCELLED and not known.accepted_seq:
            log.info(
                "request was cancelled before it arrived", extra={"request_id": known.request_id}
            )
            return
        if known.intake_seq != item.seq:
            DUPLICATE_SUBMISSIONS.inc()
            log.info("duplicate submission ignored", extra={"request_id": known.request_id})
            return
        if known.queued_seq == known.accepted_seq:  # else requeued since: the retry queue owns it
            await self._schedule(known)

    # --- retries -------------------------------------------------------------------------

    async def on_retry(self, item: WorkItem, level: QueueLevel, blocked: bool) -> None:
        """A retry that is due, at the level its requeue event gave it. A blocked one (nothing
        could hold it) is tried only if it fits on the snapshot now; otherwise it is parked,
        at that level, until capacity it could use appears."""
        state = await self.store.load_request(request_id_of(item.subject))
        if state.queued_seq != item.seq or state.state not in _SCHEDULABLE:
            await item.ack()  # moved on meanwhile (cancelled, taken over): not ours
            return
        request = state.request
        if blocked and request is not None and not self._dry_plan(request):
            if request.request_id in self._recent_cancels:
                await item.ack()
                return
            self.blocked.park(Parked(item, request, level))
            return
        await self._schedule(state)
        await item.ack()

    # --- one attempt ---------------------------------------------------------------------

    async def _claim(self, state: RequestState) -> RequestState | None:
        """Append our claim; None when the request is no longer ours to schedule."""
        queued_seq = state.queued_seq
        for _ in range(self.config.worker.max_conflict_retries):
            if state.state not in _SCHEDULABLE or state.queued_seq != queued_seq:
                return None
            claim = RequestClaimed(at=time.time(), attempt=state.attempt, worker=self.name)
            try:
                seq = await self._append_to_request(state, claim)
            except ConflictError:
                COMMIT_CONFLICTS.labels(scope="request").inc()
                state = await self.store.load_request(state.request_id)
                continue
            state.apply(claim, seq)
            return state
        return None

    async def _schedule(self, queued: RequestState) -> None:
        """A queued request (a retry, or one taken over after a lease expired): claim it,
        then attempt."""
        state = await self._claim(queued)
        if state is None or state.request is None:
            return
        await self._attempt(state, state.request, prefix=(), accepted_at=state.accepted_at)

    def _request_appends(self, state: RequestState, events: Sequence[Event]) -> list[Append]:
        """Events for the request's subject; the first is conditional on the request's history
        being what `state` folded, the others follow it in the same atomic append."""
        return [
            Append(
                subject=request_subject(state.request_id, type(event).__name__),
                event=event,
                msg_id=new_msg_id(state.request_id, event),
                expect_seq=state.last_seq if index == 0 else None,
                expect_scope=request_history(state.request_id) if index == 0 else None,
            )
            for index, event in enumerate(events)
        ]

    async def _attempt(
        self,
        state: RequestState,
        request: Request,
        prefix: tuple[Event, ...],
        accepted_at: float,
    ) -> bool:
        """Plan and commit one attempt. False when the request's history was not what
        `state` says (someone else moved it on); the outcome then belongs to them."""
        started = time.monotonic()
        attempt = state.attempt if not prefix else 1
        profile = PROFILES[request.policy]
        conflicts = stale = 0
        while conflicts < self.config.worker.max_conflict_retries and stale < 10_000:
            decision = plan_avoiding(
                profile, request, self.snapshot, self.planner, state.avoid_clusters
            )
            now = time.time()
            if not decision.placed:
                reason = f"unschedulable: {decision.explanation.summary}"
                outcome = self.retry_policy.after_failure(
                    attempt, reason, list(state.reasons), now, decision.explanation,
                    fast=request.fast, blocked=decision.waits_for_capacity,
                )  # fmt: skip
                if not await self._append_outcome(state, (*prefix, outcome), "unschedulable"):
                    return False
                SCHEDULE_ATTEMPTS.labels(result="unschedulable", policy=request.policy).inc()
                ATTEMPT_DURATION.labels("unschedulable", request.policy).observe(
                    time.monotonic() - started
                )
                return True
            committed = PlacementCommitted(
                at=now,
                attempt=attempt,
                placements=decision.placements,
                level_index=decision.level_index,
                explanation=decision.explanation,
                worker=self.name,
            )
            items = self._request_appends(state, (*prefix, committed))
            for placement in decision.placements:
                node = self.snapshot.clusters[placement.cluster].nodes[placement.node]
                reserved = CapacityReserved(
                    at=now,
                    cluster=placement.cluster,
                    node=placement.node,
                    request_id=request.request_id,
                    attempt=attempt,
                    amount=placement.amount,
                )
                items.append(
                    Append(
                        subject=node_subject(placement.cluster, placement.node, "CapacityReserved"),
                        event=reserved,
                        msg_id=new_msg_id(request.request_id, reserved),
                        expect_seq=node.last_seq,
                        expect_scope=node_history(placement.cluster, placement.node),
                    )
                )
            result = await self._commit(request, items, len(items) - len(decision.placements))
            if result is None:
                stale += 1  # a sibling in this process changed a chosen node: plan again
                continue
            if result is False:
                conflicts += 1
                if not await self._catch_up_after_conflict(state, decision.placements):
                    return False
                continue
            for event in (*prefix, committed):
                EVENT_APPENDS.labels(type=type(event).__name__).inc()
            SCHEDULE_ATTEMPTS.labels(result="scheduled", policy=request.policy).inc()
            ATTEMPT_DURATION.labels("scheduled", request.policy).observe(time.monotonic() - started)
            E2E_DURATION.labels(stage="scheduled").observe(max(0.0, now - accepted_at))
            return True
        reason = "gave up after repeated commit conflicts"
        outcome = self.retry_policy.after_failure(
            attempt, reason, list(state.reasons), time.time(), fast=request.fast
        )
        SCHEDULE_ATTEMPTS.labels(result="error", policy=request.policy).inc()
        return await self._append_outcome(state, (*prefix, outcome), "commit_conflicts")

    async def _append_outcome(
        self, state: RequestState, events: tuple[Event, ...], kind: str
    ) -> bool:
        try:
            await self.store.append_batch(self._request_appends(state, events))
        except ConflictError:
            return False
        outcome = events[-1]
        if isinstance(outcome, RequestFailed):
            log.info("request failed", extra={"request_id": state.request_id})
        elif isinstance(outcome, RequestRequeued):
            RETRIES.labels(reason=kind).inc()
        return True

    async def _commit(self, request: Request, items: list[Append], first_node: int) -> bool | None:
        """Append the commit batch under this process's node locks.

        True: committed, and the reservations are folded into the snapshot at once.
        False: another process won the race. None: while waiting for the lock the chosen
        node stopped passing the filters on the log's own numbers, so plan again.

        While waiting, the placement counts as pending on its nodes, so other attempts of
        this process plan around it instead of queueing for the same node.
        """
        head, reservations = items[:first_node], items[first_node:]
        placements = [
            Placement(r.event.cluster, r.event.node, r.event.amount)
            for r in reservations
            if isinstance(r.event, CapacityReserved)
        ]
        nodes = [self.snapshot.clusters[p.cluster].nodes[p.node] for p in placements]
        for node, placement in zip(nodes, placements, strict=True):
            node.pending = node.pending + placement.amount
        try:
            keys = sorted({(p.cluster, p.node) for p in placements})
            async with contextlib.AsyncExitStack() as held:
                for key in keys:
                    await held.enter_async_context(self._node_locks.setdefault(key, asyncio.Lock()))
                fenced = []
                for item, node, placement in zip(reservations, nodes, placements, strict=True):
                    # Re-check on the log's numbers under the lock: siblings may have committed
                    # to this node since we planned; the expected sequence is the node's now.
                    if not fits_now(PROFILES[request.policy], request, node, placement.amount):
                        return None
                    fenced.append(replace(item, expect_seq=node.last_seq))
                self._requests_in_commit[request.request_id] = request
                try:
                    sequences = await self.store.append_batch([*head, *fenced])
                except KnownStaleError:
                    COMMIT_CONFLICTS.labels(scope="node_seen").inc()
                    return None  # the snapshot already has what beat us: plan again now
                except ConflictError:
                    return False
                for item, seq in zip(fenced, sequences[first_node:], strict=True):
                    self.snapshot.apply(item.event, seq)  # type: ignore[arg-type]
            return True
        finally:
            self._requests_in_commit.pop(request.request_id, None)
            for node, placement in zip(nodes, placements, strict=True):
                node.pending = node.pending - placement.amount

    async def _catch_up_after_conflict(
        self, state: RequestState, placements: tuple[Placement, ...]
    ) -> bool:
        """After a lost commit: False if the request is no longer ours, else wait until the
        snapshot holds the node events that beat us."""
        last = await self.store.last(request_history(state.request_id))
        if (last.seq if last else 0) != state.last_seq:
            COMMIT_CONFLICTS.labels(scope="request").inc()
            return False
        COMMIT_CONFLICTS.labels(scope="node").inc()
        for placement in placements:
            newest = await self.store.last(node_history(placement.cluster, placement.node))
            if newest is not None:
                await self.snapshot.wait_for(newest.seq, timeout=5.0)
        return True
