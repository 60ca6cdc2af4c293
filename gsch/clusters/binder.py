"""The binder: takes committed placements and cancellations from the log and routes each, by
cluster, to the backend that serves it: the simulator, a Kubernetes API server reached through
a kubeconfig, or an agent inside the cluster reached over NATS.

Outcomes go back to the log conditionally on the request's history: `RequestBound` when every
cluster accepted its part, or (after undoing the parts that were applied) the retry policy's
`RequestRequeued`/`RequestFailed` with the capacity released, so the queue retries elsewhere.
A request that moved on meanwhile (cancelled, taken over) keeps nothing that was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from gsch.config import Config
from gsch.eventstore.consumers import WorkItem, consume
from gsch.eventstore.ids import new_msg_id
from gsch.eventstore.store import Append, ConflictError, EventStore
from gsch.eventstore.subjects import (
    EVENTS_STREAM,
    node_subject,
    request_history,
    request_id_of,
    request_subject,
)
from gsch.metrics import BINDING_DURATION, EVENT_APPENDS, RETRIES
from gsch.model.events import (
    CapacityReleased,
    Placement,
    PlacementCommitted,
    RequestBound,
    RequestCancelled,
    decode_event,
)
from gsch.model.request import Request
from gsch.model.states import State
from gsch.scheduler.decide import RetryPolicy

log = logging.getLogger(__name__)

BINDER_CONSUMER = "gsch-binder"
# A cancellation whose cluster cannot be reached is retried this many times, this far apart.
CANCEL_DELIVERIES = 20
CANCEL_RETRY_SECONDS = 5.0


class BindingRefused(Exception):
    """A cluster refused a binding or could not be asked; the message is the reason."""


@dataclass(frozen=True)
class Binding:
    """One request's part on one cluster."""

    request_id: str
    attempt: int
    cluster: str
    placements: tuple[Placement, ...]
    request: Request | None  # loaded only for backends that apply the workload


class Backend(Protocol):
    # Whether bind/unbind need the request (its workload); loading it costs a read.
    needs_request: bool

    def serves(self, cluster: str) -> bool: ...

    async def bind(self, binding: Binding) -> None:
        """Apply; raise BindingRefused with the cluster's reason. Applying twice is harmless."""

    async def unbind(self, binding: Binding) -> None:
        """Remove what bind applied (nothing applied is fine); raise BindingRefused if the
        cluster could not be asked."""


def releases(
    request_id: str, attempt: int, placements: tuple[Placement, ...], reason: str
) -> list[Append]:
    """CapacityReleased for each placement, ready to go in the batch that ends the hold."""
    now = time.time()
    items = []
    for placement in placements:
        released = CapacityReleased(
            at=now, cluster=placement.cluster, node=placement.node, request_id=request_id,
            attempt=attempt, reason=reason,
        )  # fmt: skip
        subject = node_subject(placement.cluster, placement.node, "CapacityReleased")
        items.append(Append(subject, released, new_msg_id(request_id, released)))
    return items


class Binder:
    def __init__(self, config: Config, store: EventStore, backends: list[Backend]) -> None:
        self.config = config
        self.store = store
        self.backends = backends
        self.retry_policy = RetryPolicy.from_config(config.queue)

    async def run(self, stop: asyncio.Event) -> None:
        await consume(
            self.store,
            EVENTS_STREAM,
            BINDER_CONSUMER,
            self.handle,
            stop,
            max_in_flight=self.config.worker.max_in_flight * 4,
            batch=self.config.worker.fetch_batch,
            lease_seconds=self.config.queue.lease_seconds,
        )

    async def handle(self, item: WorkItem) -> None:
        try:
            event = decode_event(item.data)
        except ValueError:
            await item.ack()
            return
        if isinstance(event, PlacementCommitted):
            await self._bind(item, event)
        elif isinstance(event, RequestCancelled) and not await self._cancel(item, event):
            await item.nak(delay=CANCEL_RETRY_SECONDS)
            return
        await item.ack()

    def _route(
        self, request_id: str, attempt: int, placements: tuple[Placement, ...]
    ) -> tuple[list[tuple[Backend, Binding]], list[str]]:
        """Each cluster's part with its backend, and the clusters no backend serves."""
        parts: dict[str, list[Placement]] = {}
        for placement in placements:
            parts.setdefault(placement.cluster, []).append(placement)
        routed, missing = [], []
        for cluster, own in parts.items():
            backend = next((b for b in self.backends if b.serves(cluster)), None)
            if backend is None:
                missing.append(cluster)
            else:
                routed.append((backend, Binding(request_id, attempt, cluster, tuple(own), None)))
        return routed, missing

    async def _with_request(
        self, request_id: str, routed: list[tuple[Backend, Binding]], expect_seq: int | None
    ) -> list[tuple[Backend, Binding]] | None:
        """The parts with the request filled in where a backend needs it; None when the
        request's history has moved past `expect_seq`."""
        if not any(backend.needs_request for backend, _ in routed):
            return routed
        state = await self.store.load_request(request_id)
        if expect_seq is not None and state.last_seq != expect_seq:
            return None
        return [
            (backend, Binding(b.request_id, b.attempt, b.cluster, b.placements, state.request))
            for backend, b in routed
        ]

    async def _bind(self, item: WorkItem, event: PlacementCommitted) -> None:
        request_id = request_id_of(item.subject)
        started = time.monotonic()
        routed, missing = self._route(request_id, event.attempt, event.placements)
        applied: list[tuple[Backend, Binding]] = []
        failure = None
        refused: tuple[str, ...] = ()
        if missing:
            failure = f"no binder serves cluster {', '.join(missing)}"
            refused = tuple(missing)
        else:
            parts = await self._with_request(request_id, routed, item.seq)
            if parts is None:
                return  # the request moved on; whoever moved it owns the outcome
            for backend, binding in parts:
                try:
                    await backend.bind(binding)
                except BindingRefused as exc:
                    failure, refused = str(exc), (binding.cluster,)
                    break
                applied.append((backend, binding))
        cluster = event.placements[0].cluster if event.placements else "none"
        if failure is not None:
            await self._undo(applied)
            await self._fail_binding(request_id, event, item.seq, failure, refused)
            result = "failed"
        else:
            result = "bound"
            bound = RequestBound(at=time.time(), attempt=event.attempt, placements=event.placements)
            try:
                await self._append_request(request_id, bound, expect=item.seq)
            except ConflictError:
                state = await self.store.load_request(request_id)
                if not (state.state is State.BOUND and state.attempt == event.attempt):
                    await self._undo(applied)  # cancelled or taken over while we applied
                    return
        BINDING_DURATION.labels(member_cluster=cluster, result=result).observe(
            time.monotonic() - started
        )

    async def _undo(self, applied: list[tuple[Backend, Binding]]) -> None:
        for backend, binding in applied:
            try:
                await backend.unbind(binding)
            except BindingRefused as exc:
                log.warning(
                    "could not undo a binding",
                    extra={"request_id": binding.request_id, "cluster": binding.cluster,
                           "error": str(exc)},
                )  # fmt: skip

    async def _cancel(self, item: WorkItem, event: RequestCancelled) -> bool:
        """Remove what was applied for a cancelled request; False to try again later."""
        request_id = request_id_of(item.subject)
        routed, _ = self._route(request_id, event.attempt, event.placements)
        parts = await self._with_request(request_id, routed, None) if routed else []
        retry = False
        for backend, binding in parts or ():
            try:
                await backend.unbind(binding)
            except BindingRefused as exc:
                retry = item.deliveries < CANCEL_DELIVERIES
                log.warning(
                    "cancelled workload not removed yet",
                    extra={"request_id": request_id, "cluster": binding.cluster,
                           "error": str(exc), "will_retry": retry},
                )  # fmt: skip
        return not retry

    async def _append_request(self, request_id: str, event: RequestBound, expect: int) -> int:
        seq = await self.store.append(
            Append(
                request_subject(request_id, type(event).__name__),
                event,
                new_msg_id(request_id, event),
                expect_seq=expect,
                expect_scope=request_history(request_id),
            )
        )
        EVENT_APPENDS.labels(type=type(event).__name__).inc()
        return seq

    async def _fail_binding(
        self,
        request_id: str,
        committed: PlacementCommitted,
        seq: int,
        reason: str,
        refused: tuple[str, ...],
    ) -> None:
        state = await self.store.load_request(request_id)
        if state.last_seq != seq:
            return  # the request moved on; whoever moved it owns the outcome
        fast = state.request.fast if state.request is not None else False
        outcome = self.retry_policy.after_failure(
            committed.attempt, reason, list(state.reasons), time.time(), fast=fast, avoid=refused
        )
        head = Append(
            request_subject(request_id, type(outcome).__name__),
            outcome,
            new_msg_id(request_id, outcome),
            expect_seq=seq,
            expect_scope=request_history(request_id),
        )
        items = releases(request_id, committed.attempt, committed.placements, reason)
        with contextlib.suppress(ConflictError):
            await self.store.append_batch([head, *items])
            RETRIES.labels(reason="binding_failed").inc()
