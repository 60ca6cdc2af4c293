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

from gsch.eventstore.consumers import WorkItem, consume
from gsch.eventstore.store import ConflictError, EventStore
from gsch.eventstore.subjects import EVENTS_STREAM
from gsch.metrics import BINDING_DURATION, RETRIES
from gsch.model.decisions import binding_failed, bound
from gsch.model.events import Placement, PlacementCommitted, RequestCancelled, decode_event
from gsch.model.request import Request
from gsch.model.retry import RetryPolicy
from gsch.model.states import State
from gsch.runtime.config import Config

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
        )

    async def handle(self, item: WorkItem) -> None:
        try:
            event = decode_event(item.data)
        except ValueError:
            await item.ack()
            return
        request_id = item.request_id
        if request_id is None:
            await item.ack()
            return
        if isinstance(event, PlacementCommitted):
            await self._bind(item, request_id, event)
        elif isinstance(event, RequestCancelled) and not await self._cancel(
            item, request_id, event
        ):
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

    async def _bind(self, item: WorkItem, request_id: str, event: PlacementCommitted) -> None:
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
            try:
                await self.store.append_change(bound(request_id, event, item.seq, time.time()))
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

    async def _cancel(self, item: WorkItem, request_id: str, event: RequestCancelled) -> bool:
        """Remove what was applied for a cancelled request; False to try again later."""
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

    async def _fail_binding(
        self,
        request_id: str,
        committed: PlacementCommitted,
        seq: int,
        reason: str,
        refused: tuple[str, ...],
    ) -> None:
        state = await self.store.load_request(request_id)
        change = binding_failed(
            state, committed, seq, reason, refused, self.retry_policy, time.time()
        )
        if change is None:
            return  # the request moved on; whoever moved it owns the outcome
        with contextlib.suppress(ConflictError):
            await self.store.append_change(change)
            RETRIES.labels(reason="binding_failed").inc()
