"""The in-memory cluster snapshot: every cluster, node, reservation and latency, folded from
the cluster events of the log. Workers plan against it; it remembers, per node, the stream
sequence of the node's last event, which is what a conditional reservation is checked on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    LatencyReported,
    NodeDeclared,
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
    # Cluster-level aggregates over ready nodes, kept current on every node event, so a planner
    # can bound what a cluster could score without visiting its nodes: the largest free share
    # of cpu and of memory any node has (0..1), and the most free GPUs on one node.
    max_free_cpu_share: float = 0.0
    max_free_memory_share: float = 0.0
    max_free_gpus: int = 0

    def refresh_aggregates(self) -> None:
        cpu = memory = 0.0
        gpus = 0
        for node in self.nodes.values():
            if not (node.declared and node.ready):
                continue
            free = node.confirmed_free
            a = node.allocatable
            if a.cpu_m > 0:
                cpu = max(cpu, free.cpu_m / a.cpu_m)
            if a.memory > 0:
                memory = max(memory, free.memory / a.memory)
            gpus = max(gpus, free.gpu)
        self.max_free_cpu_share, self.max_free_memory_share, self.max_free_gpus = cpu, memory, gpus

    def node(self, name: str) -> NodeView:
        view = self.nodes.get(name)
        if view is None:
            view = self.nodes[name] = NodeView(self.name, name)
        return view


class ClusterSnapshot:
    def __init__(self) -> None:
        self.clusters: dict[str, ClusterView] = {}
        # Cluster names by (label, value), so a label selector costs what it matches, not
        # what the fleet holds.
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self._selected: dict[tuple[tuple[str, str], ...], list[str]] = {}  # cleared on relabel
        self.latency: dict[tuple[str, str], LatencyReported] = {}
        self.last_seq = 0
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
                self.clusters[event.cluster].refresh_aggregates()
                self._capacity_may_have_grown(event.cluster)
            case CapacityReserved():
                node = self.cluster(event.cluster).node(event.node)
                previous = node.reservations.get(event.request_id)
                if previous is not None:
                    node.reserved = node.reserved - previous
                node.reservations[event.request_id] = event.amount
                node.reserved = node.reserved + event.amount
                node.last_seq = seq
                self.clusters[event.cluster].refresh_aggregates()
            case CapacityReleased():
                node = self.cluster(event.cluster).node(event.node)
                released = node.reservations.pop(event.request_id, None)
                if released is not None:
                    node.reserved = node.reserved - released
                node.last_seq = seq
                self.clusters[event.cluster].refresh_aggregates()
                if released is not None:
                    self._capacity_may_have_grown(event.cluster)
            case LatencyReported():
                self.latency[(event.cluster, event.node)] = event
            case _:
                pass

    def _capacity_may_have_grown(self, cluster: str) -> None:
        for listener in self.capacity_listeners:
            listener(cluster)

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

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until events up to `seq` are folded; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self.last_seq < seq:
                    await self._advanced.wait()
        except TimeoutError:
            return False
        return True
