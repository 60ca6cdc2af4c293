"""The simulator backend: member clusters that exist only as a topology file, but behave like
clusters. It declares their inventory and latencies as events, binds the placements the binder
routes to it after a delay (failing a configured share of them, which the queue retries), and
finishes bound workloads, releasing their capacity: after `simulator.workload_lifetime`, or,
when the topology has a duration model (`[workloads]`, see `durations`), after a run that
depends on where the workload was placed (and on the queues of shared resources), scaled by
`simulator.time_scale`. It is the embedded default for the demo and benchmarks, not a test
double.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from gsch.clusters.binder import Binding, BindingRefused
from gsch.clusters.durations import DurationError, Run
from gsch.clusters.facts import declare
from gsch.clusters.runs import WorkloadRuns
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

# A run ended before its binding was recorded (the binder appends it just after `bind`):
# looked at again this much later.
NOT_BOUND_YET = 0.05


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
        self._runs = WorkloadRuns(self._spawn_finish)
        self._tasks: set[asyncio.Task[None]] = set()
        # A duration model reads the request (its source and annotations); without one a
        # simulated cluster applies nothing and needs no workload.
        self.needs_request = topology.workloads is not None

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

    def serves(self, cluster: str) -> bool:
        return cluster in self._clusters

    async def bind(self, binding: Binding) -> None:
        await asyncio.sleep(self.options.bind_delay)
        if binding.cluster in self._unreachable:
            raise BindingRefused(f"binding failed on {binding.cluster}: cluster unreachable")
        rate = self._specs[binding.cluster].bind_failure_rate
        if self._random.random() < (self.options.bind_failure_rate if rate is None else rate):
            raise BindingRefused(f"binding failed on {binding.cluster}: simulated API error")
        run = self._run_of(binding)
        if run is not None:
            self._runs.start(binding.request_id, run)

    def _run_of(self, binding: Binding) -> Run | None:
        """How long the bound workload runs (real seconds); None: for ever."""
        model = self.topology.workloads
        if model is None:
            lifetime = self.options.workload_lifetime
            return Run(lifetime) if lifetime is not None else None
        placed = (binding.cluster, binding.placements[0].node)
        try:
            run = model.run(binding.request, placed, self.topology.rtt, self.topology.pod_node)
        except DurationError as exc:
            raise BindingRefused(f"binding failed on {binding.cluster}: {exc}") from exc
        scale = self.options.time_scale
        return Run(run.node_seconds * scale, tuple((n, t * scale) for n, t in run.shared))

    async def unbind(self, binding: Binding) -> None:
        self._runs.cancel(binding.request_id)

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
        self._runs.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- workload lifetime ---------------------------------------------------------------

    def _spawn_finish(self, request_id: str) -> None:
        # Stamped now, when the run ends, not when the log has been read and written.
        task = asyncio.create_task(self._finish(request_id, time.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rearm_running_workloads(self) -> None:
        """After a restart, workloads holding capacity on our clusters finish after a spread
        share of their run (where they were in it is not known; shared queues restart empty)."""
        model = self.topology.workloads
        if model is not None:
            longest: float | None = model.base_seconds * self.options.time_scale
        else:
            longest = self.options.workload_lifetime
        if longest is None:
            return
        for name in self._clusters:
            view = self.snapshot.clusters.get(name)
            for node in view.nodes.values() if view else ():
                for request_id in node.reservations:
                    self._runs.start(request_id, Run(self._random.uniform(0, longest)))

    async def _finish(self, request_id: str, ended: float) -> None:
        state = await self.store.load_request(request_id)
        if state.state is State.SCHEDULED:
            self._runs.start(request_id, Run(NOT_BOUND_YET))  # look again shortly
            return
        change = finish(state, ended)
        if change is None:
            return
        with contextlib.suppress(ConflictError):
            await self.store.append_change(change)
        E2E_DURATION.labels(stage="finished").observe(max(0.0, time.time() - state.accepted_at))
