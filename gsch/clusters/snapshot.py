"""The in-memory cluster snapshot: every cluster, node, reservation and latency, folded from
the cluster events of the log. Workers plan against it; it remembers, per node, the stream
sequence of the node's last event, which is what a conditional reservation is checked on.
"""

from __future__ import annotations

import asyncio
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
        self.latency: dict[tuple[str, str], LatencyReported] = {}
        self.last_seq = 0
        self._advanced = asyncio.Event()

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
                cluster.tier, cluster.labels = event.tier, dict(event.labels)
                cluster.ready, cluster.declared = event.ready, True
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
            case CapacityReserved():
                node = self.cluster(event.cluster).node(event.node)
                previous = node.reservations.get(event.request_id)
                if previous is not None:
                    node.reserved = node.reserved - previous
                node.reservations[event.request_id] = event.amount
                node.reserved = node.reserved + event.amount
                node.last_seq = seq
            case CapacityReleased():
                node = self.cluster(event.cluster).node(event.node)
                released = node.reservations.pop(event.request_id, None)
                if released is not None:
                    node.reserved = node.reserved - released
                node.last_seq = seq
            case LatencyReported():
                self.latency[(event.cluster, event.node)] = event
            case _:
                pass

    def select(self, requirements: tuple[tuple[str, str], ...]) -> list[str]:
        """Names of the clusters whose labels meet every requirement, in name order."""
        matched: set[str] | None = None
        for label in requirements:
            found = self._by_label.get(label, set())
            matched = set(found) if matched is None else matched & found
            if not matched:
                return []
        return sorted(matched or ())

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until events up to `seq` are folded; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while self.last_seq < seq:
                    await self._advanced.wait()
        except TimeoutError:
            return False
        return True
