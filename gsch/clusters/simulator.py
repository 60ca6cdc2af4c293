"""The simulator backend: member clusters that exist only as a topology file, but behave like
clusters. It declares their inventory and latencies as events, binds the placements the binder
routes to it after a delay (failing a configured share of them, which the queue retries), and,
with a workload lifetime, finishes bound workloads and releases their capacity so long runs
reach a steady state. It is the embedded default for the demo and benchmarks, not a test double.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from gsch.clusters.binder import Binding, BindingRefused
from gsch.clusters.facts import declare
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import SimNode, Topology
from gsch.eventstore.store import ConflictError, EventStore
from gsch.eventstore.subjects import ClusterKey, LatencyKey, NodeKey, PodsKey
from gsch.metrics import E2E_DURATION
from gsch.model.decisions import finish
from gsch.model.events import ClusterDeclared, PodsReported
from gsch.model.states import State
from gsch.runtime.config import Config

log = logging.getLogger(__name__)


class Simulator:
    def __init__(
        self, config: Config, topology: Topology, store: EventStore, snapshot: ClusterSnapshot
    ) -> None:
        self.config = config
        self.options = config.simulator
        self.topology = topology
        self.store = store
        self.snapshot = snapshot
        self._random = random.Random(self.options.seed)
        self._clusters = topology.cluster_names()
        self._specs = {cluster.name: cluster for cluster in topology.clusters}
        self._unreachable: set[str] = set()
        self._outages: list[asyncio.TimerHandle] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- inventory -----------------------------------------------------------------------

    async def declare_inventory(self) -> int:
        """Append the topology's clusters, nodes and latencies where the log differs.

        Returns the number of events appended (0 when the log already says it all)."""
        appended = 0
        now = time.time()
        topology = self.topology
        for cluster in topology.clusters:
            view = self.snapshot.clusters.get(cluster.name)
            if view is None or not view.declared or (view.tier, view.labels, view.ready) != (
                cluster.tier, cluster.labels, cluster.ready,
            ):  # fmt: skip
                await declare(
                    self.store, ClusterKey(cluster.name), topology.cluster_event(cluster, now)
                )
                appended += 1
            to_clusters = topology.latencies_from(cluster.name)
            for node in cluster.nodes:
                current = view.nodes.get(node.name) if view else None
                wanted = (node.allocatable, node.labels, node.taints, node.ready)
                if current is None or not current.declared or wanted != (
                    current.allocatable, current.labels, current.taints, current.ready,
                ):  # fmt: skip
                    event = topology.node_event(cluster, node, now)
                    await declare(self.store, NodeKey(cluster.name, node.name), event)
                    appended += 1
                reported = self.snapshot.latency.get((cluster.name, node.name))
                if reported is None or (reported.to_clusters, reported.to_nodes) != (
                    to_clusters, topology.node_latencies_from(cluster, node),
                ):  # fmt: skip
                    latency = topology.latency_event(cluster, node, now)
                    await declare(self.store, LatencyKey(cluster.name, node.name), latency)
                    appended += 1
                appended += await self._report_pods(cluster.name, node, now)
        return appended

    async def _report_pods(self, cluster: str, node: SimNode, now: float) -> int:
        """The pods the topology runs on a node (frompod sources), where the log differs."""
        reported = self.snapshot.node_pods(cluster, node.name)
        if reported == node.pods or (reported is None and not node.pods):
            return 0
        event = PodsReported(at=now, cluster=cluster, node=node.name, pods=node.pods)
        await declare(self.store, PodsKey(cluster, node.name), event)
        return 1

    # --- binding (a Backend of the binder) ----------------------------------------------

    needs_request = False  # a simulated cluster applies nothing, so it needs no workload

    def serves(self, cluster: str) -> bool:
        return cluster in self._clusters

    async def bind(self, binding: Binding) -> None:
        await asyncio.sleep(self.options.bind_delay)
        if binding.cluster in self._unreachable:
            raise BindingRefused(f"binding failed on {binding.cluster}: cluster unreachable")
        rate = self._specs[binding.cluster].bind_failure_rate
        if self._random.random() < (self.options.bind_failure_rate if rate is None else rate):
            raise BindingRefused(f"binding failed on {binding.cluster}: simulated API error")
        self._arm_lifetime(binding.request_id)

    async def unbind(self, binding: Binding) -> None:
        timer = self._timers.pop(binding.request_id, None)
        if timer is not None:
            timer.cancel()

    def start(self) -> None:
        """Re-arm the lifetimes of workloads that already run on our clusters, and the
        outages the topology schedules."""
        self._rearm_running_workloads()
        loop = asyncio.get_running_loop()
        for cluster in self.topology.clusters:
            if cluster.unreachable_after is not None:
                self._outages.append(
                    loop.call_later(cluster.unreachable_after, self._spawn_outage, cluster.name)
                )

    def _spawn_outage(self, name: str) -> None:
        task = asyncio.create_task(self._become_unreachable(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _become_unreachable(self, name: str) -> None:
        """The cluster's API stops answering: bindings are refused from now on, and the
        cluster is declared not ready, as the Kubernetes inventory does for a silent API."""
        self._unreachable.add(name)
        spec = self._specs[name]
        event = ClusterDeclared(at=time.time(), cluster=name, tier=spec.tier, labels=spec.labels,
                                ready=False)  # fmt: skip
        await declare(self.store, ClusterKey(name), event)
        log.warning("simulated cluster unreachable", extra={"cluster": name})

    async def close(self) -> None:
        for outage in self._outages:
            outage.cancel()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
        change = finish(state, time.time())
        if change is None:
            return
        with contextlib.suppress(ConflictError):
            await self.store.append_change(change)
        E2E_DURATION.labels(stage="finished").observe(max(0.0, time.time() - state.accepted_at))
