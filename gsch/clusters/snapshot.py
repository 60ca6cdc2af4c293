"""The in-memory cluster snapshot: every cluster, node, reservation and latency, folded from
the cluster events of the log. Workers plan against it; it remembers, per node, the stream
sequence of the node's last event, which is what a conditional reservation is checked on.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    LatencyReported,
    NodeDeclared,
    Placement,
    PodsReported,
    Taint,
)
from gsch.model.resources import Resources


@dataclass
class NodeView:
    cluster: str
    name: str
    allocatable: Resources = Resources()
    foreign: Resources = Resources()
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = False
    declared: bool = False
    reservations: dict[str, Resources] = field(default_factory=dict)
    reserved: Resources = Resources()
    # Reservations this process is committing right now (not yet in the log). Planning
    # subtracts them so concurrent attempts in one worker spread instead of colliding.
    pending: Resources = Resources()
    last_seq: int = 0  # stream sequence of the last event in this node's scope

    @property
    def confirmed_free(self) -> Resources:
        """Free capacity according to the log alone."""
        a, f, r = self.allocatable, self.foreign, self.reserved
        return Resources(
            a.cpu_m - f.cpu_m - r.cpu_m,
            a.memory - f.memory - r.memory,
            a.gpu - f.gpu - r.gpu,
            a.pods - f.pods - r.pods,
        )

    @property
    def held(self) -> Resources:
        """What is taken for planning: others' pods, reservations, this process's pending."""
        f, r, p = self.foreign, self.reserved, self.pending
        return Resources(
            f.cpu_m + r.cpu_m + p.cpu_m,
            f.memory + r.memory + p.memory,
            f.gpu + r.gpu + p.gpu,
            f.pods + r.pods + p.pods,
        )

    @property
    def free(self) -> Resources:
        """Free capacity for planning: the log's view less this process's pending commits."""
        return self.allocatable - self.held


@dataclass
class ClusterView:
    name: str
    tier: str = "cloud"
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    declared: bool = False
    nodes: dict[str, NodeView] = field(default_factory=dict)
    # Cluster-level aggregates over ready nodes, so a planner can bound what a cluster could
    # score, and see that nothing fits, without visiting its nodes: the largest free share of
    # cpu and of memory any node has (0..1), the most free GPUs on one node, and the most free
    # of each resource on any one node. Computed when first read after a node event, not on
    # every event: every worker folds every reservation of the fleet, and most plans name
    # clusters and never read them.
    _aggregates: tuple[float, float, Resources] | None = field(default=None, repr=False)

    def refresh_aggregates(self) -> None:
        """A node changed: the aggregates are computed again when next read."""
        self._aggregates = None

    def _computed(self) -> tuple[float, float, Resources]:
        if self._aggregates is not None:
            return self._aggregates
        cpu = memory = 0.0
        most = [0, 0, 0, 0]
        for node in self.nodes.values():
            if not (node.declared and node.ready):
                continue
            free = node.confirmed_free
            a = node.allocatable
            if a.cpu_m > 0:
                cpu = max(cpu, free.cpu_m / a.cpu_m)
            if a.memory > 0:
                memory = max(memory, free.memory / a.memory)
            for index, amount in enumerate((free.cpu_m, free.memory, free.gpu, free.pods)):
                most[index] = max(most[index], amount)
        self._aggregates = (cpu, memory, Resources(*most))
        return self._aggregates

    @property
    def max_free_cpu_share(self) -> float:
        return self._computed()[0]

    @property
    def max_free_memory_share(self) -> float:
        return self._computed()[1]

    @property
    def max_free_gpus(self) -> int:
        return self._computed()[2].gpu

    @property
    def max_free(self) -> Resources:
        return self._computed()[2]

    def node(self, name: str) -> NodeView:
        view = self.nodes.get(name)
        if view is None:
            view = self.nodes[name] = NodeView(self.name, name)
        return view


class RankedClusters:
    """The clusters of one selection, in order of an upper bound of what they can score (best
    first, then by name), kept in order as their aggregates change. A planner walks it from
    the front and stops once no cluster further on can win: the cost of a request follows the
    clusters it visits, not the size of the selection."""

    def __init__(self, clusters: list[ClusterView], bound: Callable[[ClusterView], float]):
        self.bound = bound
        self.bounds = {c.name: bound(c) for c in clusters}
        self.order = sorted((-b, name) for name, b in self.bounds.items())

    def __len__(self) -> int:
        return len(self.order)

    def update(self, cluster: ClusterView) -> None:
        old = self.bounds.get(cluster.name)
        if old is None:
            return  # not in this selection
        new = self.bound(cluster)
        if new != old:
            # A plain sorted list: a move is a binary search and a memmove, microseconds for
            # thousands of clusters, and walking it from the front allocates nothing.
            del self.order[bisect.bisect_left(self.order, (-old, cluster.name))]
            bisect.insort(self.order, (-new, cluster.name))
            self.bounds[cluster.name] = new


# Pod reports are ordered by sequence; a report from the telemetry stream is newer than any
# the log carried before telemetry had a stream of its own.
_AFTER_THE_LOG = 1 << 62

# Rankings kept current at once; beyond this many, the least recently built is dropped (each
# costs a little on every capacity event, and selectors come from requests).
MAX_RANKINGS = 32


class ClusterSnapshot:
    def __init__(self) -> None:
        self.clusters: dict[str, ClusterView] = {}
        # Cluster names by (label, value), so a label selector costs what it matches, not
        # what the fleet holds.
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self._selected: dict[tuple[tuple[str, str], ...], list[str]] = {}  # cleared on relabel
        self._ranked: dict[Hashable, RankedClusters] = {}  # cleared on relabel too
        self.latency: dict[tuple[str, str], LatencyReported] = {}
        # (cluster, "namespace/name") -> (node, sequence of the report that placed it there),
        # and each node's pods as last reported, so a newer report replaces the node's list.
        self._pod_nodes: dict[tuple[str, str], tuple[str, int]] = {}
        self._node_pods: dict[tuple[str, str], tuple[tuple[str, ...], int]] = {}
        self.last_seq = 0
        # The newest `at` of any folded event: the snapshot's own clock. Ages (of latency
        # reports) are judged against it, so a plan depends on the snapshot alone and a dry
        # run decides what a worker decides on the same snapshot, whatever its wall clock.
        self.clock = 0.0
        self._advanced = asyncio.Event()
        # Called with a cluster's name when capacity there may have grown (released, node
        # (re)declared, cluster ready again): blocked requests wait for exactly this.
        self.capacity_listeners: list[Callable[[str], None]] = []

    def cluster(self, name: str) -> ClusterView:
        view = self.clusters.get(name)
        if view is None:
            view = self.clusters[name] = ClusterView(name)
        return view

    def apply(self, event: AnyEvent, seq: int) -> None:
        """Fold one cluster event. A node's events are folded in stream order exactly once:
        an event at or below the node's last sequence is already in (a worker folds its own
        committed reservation as soon as it is acknowledged, before the feed delivers it)."""
        self.last_seq = max(self.last_seq, seq)
        self.clock = max(self.clock, event.at)
        # Wake everyone waiting for a sequence; they re-check and wait on a fresh event.
        self._advanced.set()
        self._advanced = asyncio.Event()
        match event:
            case ClusterDeclared():
                cluster = self.cluster(event.cluster)
                for label in cluster.labels.items():
                    self._by_label.get(label, set()).discard(cluster.name)
                for label in event.labels.items():
                    self._by_label.setdefault(label, set()).add(cluster.name)
                self._selected.clear()
                self._ranked.clear()
                cluster.tier, cluster.labels = event.tier, dict(event.labels)
                cluster.ready, cluster.declared = event.ready, True
                self._capacity_may_have_grown(event.cluster)
            case NodeDeclared() | CapacityReserved() | CapacityReleased() if (
                seq <= self.cluster(event.cluster).node(event.node).last_seq
            ):
                pass
            case NodeDeclared():
                node = self.cluster(event.cluster).node(event.node)
                node.allocatable, node.foreign = event.allocatable, event.foreign
                node.labels, node.taints = dict(event.labels), event.taints
                node.ready, node.declared = event.ready, True
                node.last_seq = seq
                self._refresh(event.cluster)
                self._capacity_may_have_grown(event.cluster)
            case CapacityReserved():
                node = self.cluster(event.cluster).node(event.node)
                previous = node.reservations.get(event.request_id)
                if previous is not None:
                    node.reserved = node.reserved - previous
                node.reservations[event.request_id] = event.amount
                node.reserved = node.reserved + event.amount
                node.last_seq = seq
                self._refresh(event.cluster)
            case CapacityReleased():
                node = self.cluster(event.cluster).node(event.node)
                released = node.reservations.pop(event.request_id, None)
                if released is not None:
                    node.reserved = node.reserved - released
                node.last_seq = seq
                self._refresh(event.cluster)
                if released is not None:
                    self._capacity_may_have_grown(event.cluster)
            case LatencyReported() | PodsReported():
                # Reports in the log itself: what a log written before telemetry had its
                # own stream holds (and unit tests); folded like the stream's, but older.
                self._fold_report(event, seq)
            case _:
                pass

    def apply_telemetry(self, event: LatencyReported | PodsReported, seq: int) -> None:
        """Fold a node's current report from the telemetry stream. `seq` is that stream's
        sequence, another sequence space than the log's: it moves neither `last_seq` nor
        any node's position, only the clock (ages are judged against it)."""
        self.clock = max(self.clock, event.at)
        self._fold_report(event, _AFTER_THE_LOG + seq)

    def _fold_report(self, event: LatencyReported | PodsReported, order: int) -> None:
        if isinstance(event, PodsReported):
            self._fold_pods(event, order)
            return
        where = (event.cluster, event.node)
        current = self.latency.get(where)
        # The newest measurement wins, whichever stream and in whichever order it came.
        if current is None or event.at >= current.at:
            self.latency[where] = event

    def _capacity_may_have_grown(self, cluster: str) -> None:
        for listener in self.capacity_listeners:
            listener(cluster)

    def _refresh(self, name: str) -> None:
        cluster = self.clusters[name]
        cluster.refresh_aggregates()
        for ranked in self._ranked.values():
            ranked.update(cluster)

    def ranked(
        self,
        requirements: tuple[tuple[str, str], ...],
        key: Hashable,
        bound: Callable[[ClusterView], float],
    ) -> RankedClusters:
        """The clusters `requirements` select, ordered by `bound` (best first). `key` names
        the bound: the same key must always come with the same bound."""
        found = self._ranked.get((requirements, key))
        if found is None:
            if len(self._ranked) >= MAX_RANKINGS:
                del self._ranked[next(iter(self._ranked))]
            clusters = [self.clusters[name] for name in self.select(requirements)]
            found = self._ranked[(requirements, key)] = RankedClusters(clusters, bound)
        return found

    def _fold_pods(self, event: PodsReported, seq: int) -> None:
        """A node's report replaces its previous one; a pod named by two nodes' reports is
        where the newer report (higher sequence) says. Reports are current values (the log
        keeps only each node's newest), so the answer depends on those alone: a pod that
        leaves its node's report falls back to the newest other report still naming it."""
        where = (event.cluster, event.node)
        previous, previous_seq = self._node_pods.get(where, ((), 0))
        if seq <= previous_seq:
            return  # already folded
        self._node_pods[where] = (event.pods, seq)
        for pod in set(previous) - set(event.pods):
            if self._pod_nodes.get((event.cluster, pod), ("", 0))[0] == event.node:
                del self._pod_nodes[(event.cluster, pod)]
                self._pod_elsewhere(event.cluster, pod)
        for pod in event.pods:
            self._pod_nodes[(event.cluster, pod)] = (event.node, seq)

    def _pod_elsewhere(self, cluster: str, pod: str) -> None:
        best: tuple[str, int] | None = None
        for (named_cluster, node), (pods, seq) in self._node_pods.items():
            if named_cluster == cluster and pod in pods and (best is None or seq > best[1]):
                best = (node, seq)
        if best is not None:
            self._pod_nodes[(cluster, pod)] = best

    def pod_reports(self) -> list[tuple[str, str, tuple[str, ...], int]]:
        """Each node's newest pod report: (cluster, node, pods, sequence), oldest first."""
        reports = [(c, n, pods, seq) for (c, n), (pods, seq) in self._node_pods.items()]
        return sorted(reports, key=lambda report: report[3])

    def node_pods(self, cluster: str, node: str) -> tuple[str, ...] | None:
        """The pods last reported on a node; None when it never reported any."""
        found = self._node_pods.get((cluster, node))
        return found[0] if found is not None else None

    def pod_node(self, cluster: str, pod: str) -> str | None:
        """The node running `pod` ("namespace/name") in `cluster`, as last reported."""
        found = self._pod_nodes.get((cluster, pod))
        return found[0] if found is not None else None

    def select(self, requirements: tuple[tuple[str, str], ...]) -> list[str]:
        """Names of the clusters whose labels meet every requirement, in name order (cached
        until a cluster's labels change)."""
        cached = self._selected.get(requirements)
        if cached is not None:
            return cached
        matched: set[str] | None = None
        for label in requirements:
            found = self._by_label.get(label, set())
            matched = set(found) if matched is None else matched & found
            if not matched:
                break
        result = self._selected[requirements] = sorted(matched or ())
        return result

    # --- placements this process is about to commit ------------------------------------

    def assume(self, placements: Iterable[Placement]) -> None:
        """Count placements as pending on their nodes until `forget`, as kube-scheduler's
        cache assumes a pod before it is bound: a commit of this process on its way (or a
        blocked request being woken) is planned around by every other plan here, instead of
        racing it for the same room. Pending amounts are this process's own, never the log's.
        """
        for placement in placements:
            node = self.clusters[placement.cluster].nodes[placement.node]
            node.pending = node.pending + placement.amount

    def forget(self, placements: Iterable[Placement]) -> None:
        """Undo `assume` (committed: the reservation is folded from the log instead; or lost)."""
        for placement in placements:
            node = self.clusters[placement.cluster].nodes[placement.node]
            node.pending = node.pending - placement.amount

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until events up to `seq` are folded; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self.last_seq < seq:
                    await self._advanced.wait()
        except TimeoutError:
            return False
        return True
