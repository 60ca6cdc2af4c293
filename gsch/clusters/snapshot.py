"""The in-memory cluster snapshot: every cluster, node, reservation and latency, folded from
the cluster events of the log. Workers plan against it; it remembers, per node, the stream
sequence of the node's last event, which is what a conditional reservation is checked on.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from gsch.clusters.aggregates import (
    EMPTY_SHAPE,
    Aggregates,
    NodeSummary,
    Shape,
    aggregate,
    shape_of,
    summarise,
)
from gsch.clusters.empty_nodes import EmptyNodes
from gsch.clusters.rankings import LazyOrder, RankedClusters, RankKey
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


@dataclass(slots=True)
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
    # What the cluster's aggregates need of this node (see `summary`), computed when first
    # read after the node changed; `_summarised` says whether `_summary` is current.
    _summary: NodeSummary | None = field(default=None, repr=False)
    _summarised: bool = field(default=False, repr=False)

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

    @property
    def summary(self) -> NodeSummary | None:
        """The numbers every score is a function of, pending commits included; None while
        the node is not declared and ready."""
        if not self._summarised:
            ready = self.declared and self.ready
            held, free = self.held, self.confirmed_free
            self._summary = summarise(self.allocatable, held, free) if ready else None
            self._summarised = True
        return self._summary

    def resummarise(self) -> None:
        """The node changed: its summary is computed again when next read."""
        self._summarised = False


@dataclass(slots=True)
class ClusterView:
    name: str
    tier: str = "cloud"
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    declared: bool = False
    nodes: dict[str, NodeView] = field(default_factory=dict)
    # Aggregates over the ready nodes' summaries, so a planner can bound what a cluster could
    # score, and see that nothing fits, without visiting its nodes (see `aggregates`).
    # Computed when first read after a node changed, not on every event: every worker folds
    # every reservation of the fleet, and most plans name clusters and never read them.
    _aggregates: Aggregates | None = field(default=None, repr=False)
    # The ready nodes (by name: the aggregates are then a function of the nodes, not of the
    # order they were folded in, and a restored snapshot equals a replay), their names, their
    # shape and whether any has a taint: these change only when a node is declared, not with
    # the reservations that make up nearly all of the folding, so the aggregates read after a
    # reservation recompute the summaries' extremes alone.
    _ready: tuple[list[NodeView], list[str], Shape, bool] | None = field(default=None, repr=False)

    @property
    def aggregates(self) -> Aggregates:
        if self._aggregates is None:
            ready, names, shape, tainted = self._ready_nodes()
            summaries = [summary for node in ready if (summary := node.summary) is not None]
            self._aggregates = aggregate(summaries, names, shape, tainted)
        return self._aggregates

    def _ready_nodes(self) -> tuple[list[NodeView], list[str], Shape, bool]:
        if self._ready is None:
            ready = sorted(
                (node for node in self.nodes.values() if node.summary is not None),
                key=lambda node: node.name,
            )
            shape = shape_of([node.allocatable for node in ready]) if ready else EMPTY_SHAPE
            tainted = any(node.taints for node in ready)
            self._ready = (ready, [node.name for node in ready], shape, tainted)
        return self._ready

    @property
    def max_free(self) -> Resources:
        """The most free of each resource on any one ready node (the log's numbers)."""
        return self.aggregates.max_free

    def refresh_aggregates(self) -> None:
        """A node changed: the aggregates are computed again when next read."""
        self._aggregates = None

    def redeclared(self) -> None:
        """A node was declared (ready or not, of some size): which nodes are ready and their
        shape are found again too."""
        self._ready = None
        self._aggregates = None

    def node(self, name: str) -> NodeView:
        view = self.nodes.get(name)
        if view is None:
            view = self.nodes[name] = NodeView(self.name, name)
        return view


# Rankings kept current at once; beyond this many, the least recently used is dropped (each
# costs a little on every capacity event, and selectors and demands come from requests).
MAX_RANKINGS = 64
# Latency orders (clusters by round-trip time from one source node) kept at once.
MAX_LATENCY_ORDERS = 64


# Pod reports are ordered by sequence; a report from the telemetry stream is newer than any
# the log carried before telemetry had a stream of its own.
_AFTER_THE_LOG = 1 << 62


def _meets(requirements: tuple[tuple[str, str], ...], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in requirements)


class ClusterSnapshot:
    def __init__(self) -> None:
        self.clusters: dict[str, ClusterView] = {}
        # Cluster names by (label, value), so a label selector costs what it matches, not
        # what the fleet holds.
        self._by_label: dict[tuple[str, str], set[str]] = {}
        # Selections and their standing rankings, kept current as clusters are relabelled
        # and as their aggregates change (derived from the folded state alone).
        self._selected: dict[tuple[tuple[str, str], ...], list[str]] = {}
        self._ranked: dict[tuple[tuple[tuple[str, str], ...], Hashable], RankedClusters] = {}
        self.latency: dict[tuple[str, str], LatencyReported] = {}
        # Per source node and selection: the selected clusters its latency report measured,
        # nearest first (built when first asked for, dropped when that node reports again).
        self._latency_orders: dict[tuple[str, str, tuple[tuple[str, str], ...]], LazyOrder] = {}
        # (cluster, "namespace/name") -> (node, sequence of the report that placed it there),
        # and each node's pods as last reported, so a newer report replaces the node's list.
        self._pod_nodes: dict[tuple[str, str], tuple[str, int]] = {}
        self._node_pods: dict[tuple[str, str], tuple[tuple[str, ...], int]] = {}
        # The fleet's empty nodes, largest first (bin packing keeps the largest back).
        self._empty = EmptyNodes()
        self.last_seq = 0
        # The newest `at` of any folded event: the snapshot's own clock. Ages (of latency
        # reports) are judged against it, so a plan depends on the snapshot alone and a dry
        # run decides what a worker decides on the same snapshot, whatever its wall clock.
        self.clock = 0.0
        self._advanced = asyncio.Event()
        self._waiting = 0  # callers in `wait_for` (no event to make while there are none)
        # Called with a cluster's name when capacity there may have grown (released, node
        # (re)declared, cluster ready again): blocked requests wait for exactly this.
        self.capacity_listeners: list[Callable[[str], None]] = []
        # Called with each reservation folded from the log (once per reservation): hints
        # of other workers' commits in flight give way to it (gsch.scheduler.intents).
        self.reservation_listeners: list[Callable[[CapacityReserved], None]] = []

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
        if self._waiting:
            # Wake everyone waiting for a sequence; they re-check and wait on a fresh event.
            self._advanced.set()
            self._advanced = asyncio.Event()
        match event:
            case ClusterDeclared():
                cluster = self.cluster(event.cluster)
                relabelled = not cluster.declared or cluster.labels != event.labels
                if relabelled:
                    for label in cluster.labels.items():
                        self._by_label.get(label, set()).discard(cluster.name)
                    for label in event.labels.items():
                        self._by_label.setdefault(label, set()).add(cluster.name)
                cluster.tier, cluster.labels = event.tier, dict(event.labels)
                if cluster.ready != event.ready:
                    self._empty.mark_cluster(cluster)
                cluster.ready, cluster.declared = event.ready, True
                if relabelled:
                    self._reselect(cluster)
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
                self.clusters[event.cluster].redeclared()
                self._refresh(node)
                self._capacity_may_have_grown(event.cluster)
            case CapacityReserved():
                node = self.cluster(event.cluster).node(event.node)
                previous = node.reservations.get(event.request_id)
                if previous is not None:
                    node.reserved = node.reserved - previous
                node.reservations[event.request_id] = event.amount
                node.reserved = node.reserved + event.amount
                node.last_seq = seq
                self._refresh(node)
                for listener in self.reservation_listeners:
                    listener(event)
            case CapacityReleased():
                node = self.cluster(event.cluster).node(event.node)
                released = node.reservations.pop(event.request_id, None)
                if released is not None:
                    node.reserved = node.reserved - released
                node.last_seq = seq
                self._refresh(node)
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
            # The source's latency orders are built again when a walk next asks for one.
            for key in [key for key in self._latency_orders if key[:2] == where]:
                del self._latency_orders[key]

    def _capacity_may_have_grown(self, cluster: str) -> None:
        for listener in self.capacity_listeners:
            listener(cluster)

    def _refresh(self, node: NodeView) -> None:
        """A node's state changed: its summary and its cluster's aggregates are computed again
        when next read, and the standing rankings holding the cluster re-place it when next
        walked. Nothing is computed here: every worker folds every event of the fleet."""
        node.resummarise()
        self._empty.mark(node)
        cluster = self.clusters[node.cluster]
        cluster.refresh_aggregates()
        for ranked in self._ranked.values():
            ranked.mark(cluster.name)

    def _reselect(self, cluster: ClusterView) -> None:
        """A cluster's labels changed: it joins or leaves the selections kept here (and their
        rankings), one binary search each, instead of every selection being rebuilt."""
        name = cluster.name
        for requirements, names in self._selected.items():
            index = bisect.bisect_left(names, name)
            present = index < len(names) and names[index] == name
            wanted = _meets(requirements, cluster.labels)
            if wanted and not present:
                names.insert(index, name)
            elif present and not wanted:
                del names[index]
        for (requirements, _), ranked in self._ranked.items():
            if _meets(requirements, cluster.labels):
                ranked.add(cluster)
            else:
                ranked.discard(name)
        self._latency_orders.clear()  # rebuilt when next asked for

    def ranked(
        self, requirements: tuple[tuple[str, str], ...], key: Hashable, rank: RankKey
    ) -> RankedClusters:
        """The clusters `requirements` select, ordered by `rank` (best first within each of
        its groups). `key` names the rank: the same key must always come with the same rank.
        Built when first asked for, then kept current from the events folded (the clusters
        they changed re-placed here, when it is next asked for)."""
        found = self._ranked.pop((requirements, key), None)
        if found is None:
            if len(self._ranked) >= MAX_RANKINGS:
                del self._ranked[next(iter(self._ranked))]  # the least recently used
            clusters = [self.clusters[name] for name in self.select(requirements)]
            found = RankedClusters(clusters, rank)
        else:
            found.flush(self.clusters)
        self._ranked[(requirements, key)] = found  # most recently used last
        return found

    def largest_empty(self, with_gpus: bool, count: int) -> list[NodeView]:
        """Up to `count` ready nodes of ready clusters on which gsch holds nothing, with (or
        without) GPUs, largest first by what is free on them (see `empty_nodes`). Built when
        first asked for, then kept current from the events folded."""
        return self._empty.largest(self.clusters, with_gpus, count)

    def latency_order(
        self, cluster: str, node: str, requirements: tuple[tuple[str, str], ...]
    ) -> LazyOrder:
        """The clusters `requirements` select that the latest report from `cluster`/`node`
        measured, as (ms, cluster), nearest first (ties by name); empty without a report.
        Built when first asked for (sorted as far as read); dropped when that node reports
        again or a cluster is relabelled."""
        key = (cluster, node, requirements)
        found = self._latency_orders.get(key)
        if found is None:
            report = self.latency.get((cluster, node))
            measured = report.to_clusters if report is not None else {}
            found = LazyOrder(
                [(ms, name) for name in self.select(requirements) if (ms := measured.get(name))
                 is not None]
            )  # fmt: skip
            if len(self._latency_orders) >= MAX_LATENCY_ORDERS:
                del self._latency_orders[next(iter(self._latency_orders))]
            self._latency_orders[key] = found
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
            self._refresh(node)

    def forget(self, placements: Iterable[Placement]) -> None:
        """Undo `assume` (committed: the reservation is folded from the log instead; or lost)."""
        for placement in placements:
            node = self.clusters[placement.cluster].nodes[placement.node]
            node.pending = node.pending - placement.amount
            self._refresh(node)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until events up to `seq` are folded; False on timeout."""
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout):
                while self.last_seq < seq:
                    await self._advanced.wait()
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1
        return True
