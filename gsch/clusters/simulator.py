"""The simulator backend: member clusters that exist only as a topology file, but behave like
clusters. It declares their inventory and latencies as events, binds committed placements after
a delay (failing a configured share of them, which the queue retries), and, with a workload
lifetime, finishes bound workloads and releases their capacity so long runs reach a steady
state. It is the embedded default for the demo and benchmarks, not a test double.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import SimNode, Topology
from gsch.config import Config
from gsch.eventstore.consumers import WorkItem, consume
from gsch.eventstore.ids import new_msg_id
from gsch.eventstore.store import Append, ConflictError, EventStore
from gsch.eventstore.subjects import (
    EVENTS_STREAM,
    cluster_subject,
    latency_subject,
    node_subject,
    pods_subject,
    request_history,
    request_id_of,
    request_subject,
)
from gsch.metrics import BINDING_DURATION, E2E_DURATION, EVENT_APPENDS, RETRIES
from gsch.model.events import (
    CapacityReleased,
    ClusterDeclared,
    Event,
    LatencyReported,
    NodeDeclared,
    Placement,
    PlacementCommitted,
    PodsReported,
    RequestBound,
    WorkloadFinished,
    decode_event,
)
from gsch.model.states import State
from gsch.scheduler.decide import RetryPolicy

log = logging.getLogger(__name__)

BINDER_CONSUMER = "gsch-binder"


class Simulator:
    def __init__(
        self, config: Config, topology: Topology, store: EventStore, snapshot: ClusterSnapshot
    ) -> None:
        self.config = config
        self.options = config.simulator
        self.topology = topology
        self.store = store
        self.snapshot = snapshot
        self.retry_policy = RetryPolicy.from_config(config.queue)
        self._random = random.Random(self.options.seed)
        self._clusters = topology.cluster_names()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- inventory -----------------------------------------------------------------------

    async def declare_inventory(self) -> int:
        """Append the topology's clusters, nodes and latencies where the log differs.

        Returns the number of events appended (0 when the log already says it all)."""
        appended = 0
        now = time.time()
        for cluster in self.topology.clusters:
            view = self.snapshot.clusters.get(cluster.name)
            declared = ClusterDeclared(
                at=now, cluster=cluster.name, tier=cluster.tier, labels=cluster.labels,
                ready=cluster.ready,
            )  # fmt: skip
            if view is None or not view.declared or (view.tier, view.labels, view.ready) != (
                cluster.tier, cluster.labels, cluster.ready,
            ):  # fmt: skip
                await self._append(cluster_subject(cluster.name, "ClusterDeclared"), declared)
                appended += 1
            intra = self.topology.intra_cluster_ms
            to_clusters = self.topology.latencies_from(cluster.name)
            for node in cluster.nodes:
                # A node is 0 ms from itself: a workload next to its source lands on it.
                to_nodes = {n.name: 0.0 if n.name == node.name else intra for n in cluster.nodes}
                current = view.nodes.get(node.name) if view else None
                wanted = (node.allocatable, node.labels, node.taints, node.ready)
                if current is None or not current.declared or wanted != (
                    current.allocatable, current.labels, current.taints, current.ready,
                ):  # fmt: skip
                    event = NodeDeclared(
                        at=now, cluster=cluster.name, node=node.name,
                        allocatable=node.allocatable, labels=node.labels, taints=node.taints,
                        ready=node.ready,
                    )  # fmt: skip
                    await self._append(node_subject(cluster.name, node.name, "NodeDeclared"), event)
                    appended += 1
                reported = self.snapshot.latency.get((cluster.name, node.name))
                if reported is None or (reported.to_clusters, reported.to_nodes) != (
                    to_clusters, to_nodes,
                ):  # fmt: skip
                    latency = LatencyReported(
                        at=now, cluster=cluster.name, node=node.name,
                        to_clusters=to_clusters, to_nodes=to_nodes,
                    )  # fmt: skip
                    subject = latency_subject(cluster.name, node.name, "LatencyReported")
                    await self._append(subject, latency)
                    appended += 1
                appended += await self._report_pods(cluster.name, node, now)
        return appended

    async def _report_pods(self, cluster: str, node: SimNode, now: float) -> int:
        """The pods the topology runs on a node (frompod sources), where the log differs."""
        reported = self.snapshot.node_pods(cluster, node.name)
        if reported == node.pods or (reported is None and not node.pods):
            return 0
        event = PodsReported(at=now, cluster=cluster, node=node.name, pods=node.pods)
        await self._append(pods_subject(cluster, node.name, "PodsReported"), event)
        return 1

    async def _append(self, subject: str, event: Event) -> int:
        seq = await self.store.append(Append(subject, event, new_msg_id(subject, event)))
        EVENT_APPENDS.labels(type=type(event).__name__).inc()
        return seq

    # --- binding -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._rearm_running_workloads()
        try:
            await consume(
                self.store,
                EVENTS_STREAM,
                BINDER_CONSUMER,
                self.on_committed,
                stop,
                max_in_flight=self.config.worker.max_in_flight * 4,
                batch=self.config.worker.fetch_batch,
                lease_seconds=self.config.queue.lease_seconds,
            )
        finally:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def on_committed(self, item: WorkItem) -> None:
        try:
            event = decode_event(item.data)
        except ValueError:
            await item.ack()
            return
        if not isinstance(event, PlacementCommitted):
            await item.ack()
            return
        request_id = request_id_of(item.subject)
        started = time.monotonic()
        failure = self._bind(event.placements)
        await asyncio.sleep(self.options.bind_delay)
        cluster = event.placements[0].cluster if event.placements else "none"
        if failure is None:
            bound = RequestBound(at=time.time(), attempt=event.attempt, placements=event.placements)
            try:
                await self._append_request(request_id, bound, expect=item.seq)
            except ConflictError:
                pass  # cancelled or taken over meanwhile: nothing was applied for real
            else:
                BINDING_DURATION.labels(member_cluster=cluster, result="bound").observe(
                    time.monotonic() - started
                )
                self._arm_lifetime(request_id)
        else:
            await self._fail_binding(request_id, event, item.seq, failure)
            BINDING_DURATION.labels(member_cluster=cluster, result="failed").observe(
                time.monotonic() - started
            )
        await item.ack()

    def _bind(self, placements: tuple[Placement, ...]) -> str | None:
        """The reason the binding fails, or None when the clusters accept it."""
        for placement in placements:
            if placement.cluster not in self._clusters:
                return f"no binder serves cluster {placement.cluster}"
        if self._random.random() < self.options.bind_failure_rate:
            return f"binding failed on {placements[0].cluster}: simulated API error"
        return None

    async def _append_request(self, request_id: str, event: Event, expect: int) -> int:
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

    def _releases(
        self, request_id: str, attempt: int, placements: tuple[Placement, ...], reason: str
    ) -> list[Append]:
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

    async def _fail_binding(
        self, request_id: str, committed: PlacementCommitted, seq: int, reason: str
    ) -> None:
        state = await self.store.load_request(request_id)
        if state.last_seq != seq:
            return  # the request moved on; whoever moved it owns the outcome
        outcome = self.retry_policy.after_failure(
            committed.attempt, reason, list(state.reasons), time.time()
        )
        head = Append(
            request_subject(request_id, type(outcome).__name__),
            outcome,
            new_msg_id(request_id, outcome),
            expect_seq=seq,
            expect_scope=request_history(request_id),
        )
        releases = self._releases(request_id, committed.attempt, committed.placements, reason)
        with contextlib.suppress(ConflictError):
            await self.store.append_batch([head, *releases])
            RETRIES.labels(reason="binding_failed").inc()

    # --- workload lifetime ---------------------------------------------------------------

    def _arm_lifetime(self, request_id: str, delay: float | None = None) -> None:
        lifetime = self.options.workload_lifetime
        if lifetime is None or request_id in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[request_id] = loop.call_later(
            lifetime if delay is None else delay, self._spawn_finish, request_id
        )

    def _spawn_finish(self, request_id: str) -> None:
        self._timers.pop(request_id, None)
        task = asyncio.create_task(self._finish(request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rearm_running_workloads(self) -> None:
        """After a restart, workloads holding capacity on our clusters get a (spread) lifetime."""
        lifetime = self.options.workload_lifetime
        if lifetime is None:
            return
        for name in self._clusters:
            view = self.snapshot.clusters.get(name)
            for node in view.nodes.values() if view else ():
                for request_id in node.reservations:
                    self._arm_lifetime(request_id, self._random.uniform(0, lifetime))

    async def _finish(self, request_id: str) -> None:
        state = await self.store.load_request(request_id)
        if state.state is State.SCHEDULED:
            self._arm_lifetime(request_id, 1.0)  # not bound yet: look again shortly
            return
        if state.state is not State.BOUND or state.finished:
            return
        finished = WorkloadFinished(at=time.time(), attempt=state.attempt)
        head = Append(
            request_subject(request_id, "WorkloadFinished"),
            finished,
            new_msg_id(request_id, finished),
            expect_seq=state.last_seq,
            expect_scope=request_history(request_id),
        )
        releases = self._releases(request_id, state.attempt, state.placements, "workload finished")
        with contextlib.suppress(ConflictError):
            await self.store.append_batch([head, *releases])
        E2E_DURATION.labels(stage="finished").observe(max(0.0, time.time() - state.accepted_at))
