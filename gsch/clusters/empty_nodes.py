"""The fleet's empty nodes, largest first: ready nodes of ready clusters on which gsch holds
nothing (no reservation, no placement being committed), as bin packing needs them to keep the
largest back for the requests that need it (`policies/packing.py`).

Fleet-wide, derived from the folded state alone (pending commits included, as every score
sees them), so a plan that reads it is still a function of request and snapshot: the dry run
decides what a worker decides on the same snapshot. Built when first read (one pass over the
fleet), then kept current: a change of a node is noted only when the node is in the index or
holds nothing now, and re-placed when the index is next read; an entry moves only when its
node becomes empty, stops being empty, or is re-declared (size, readiness). Most folds are
reservations on nodes already in use: one check each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING

from gsch.clusters.rankings import SortedRuns
from gsch.model.resources import Resources

if TYPE_CHECKING:
    from gsch.clusters.snapshot import ClusterView, NodeView

_NOTHING = Resources()
# A node's place: largest first by free GPUs, then cpu, then memory (negated: the runs
# ascend); equal sizes by cluster and node name, so the order is total and the same on every
# snapshot of the same events.
Slot = tuple[int, int, int, str, str]


def holds_workloads(node: NodeView) -> bool:
    """Whether gsch holds (or is committing) a workload on the node. Others' pods do not
    count: every real node runs some (DaemonSets), which says nothing about whether gsch's
    workloads are packed."""
    return bool(node.reservations) or node.pending != _NOTHING


def largeness(node: NodeView) -> tuple[int, int, int]:
    """What the empty nodes are ordered by: free GPUs, then cpu, then memory."""
    free = node.free
    return free.gpu, free.cpu_m, free.memory


def _slot(cluster: ClusterView, node: NodeView) -> tuple[bool, Slot] | None:
    """Whether the node has GPUs, and its place among the empty nodes; None when it is not
    an empty node a request could open (in use, not ready, its cluster not ready)."""
    if not (cluster.ready and node.declared and node.ready) or holds_workloads(node):
        return None
    gpu, cpu, memory = largeness(node)
    return node.allocatable.gpu > 0, (-gpu, -cpu, -memory, cluster.name, node.name)


def _every_slot(
    clusters: Mapping[str, ClusterView],
) -> Iterator[tuple[tuple[str, str], tuple[bool, Slot]]]:
    for cluster in clusters.values():
        for node in cluster.nodes.values():
            slot = _slot(cluster, node)
            if slot is not None:
                yield (cluster.name, node.name), slot


class EmptyNodes:
    """The empty nodes of the fleet in two orders, with GPUs and without (a request without
    GPUs does not open a GPU node while another fits, so its largest candidates are the
    others)."""

    def __init__(self) -> None:
        self._built = False
        self._slots: dict[tuple[str, str], tuple[bool, Slot]] = {}
        self._orders: dict[bool, SortedRuns[Slot]] = {False: SortedRuns(), True: SortedRuns()}
        self._stale: set[tuple[str, str]] = set()

    def mark(self, node: NodeView) -> None:
        """The node changed: looked at again when the index is next read, if it may be or
        have been empty."""
        if self._built:
            where = (node.cluster, node.name)
            if where in self._slots or not holds_workloads(node):
                self._stale.add(where)

    def mark_cluster(self, cluster: ClusterView) -> None:
        """The cluster's readiness changed: its empty nodes join or leave."""
        if self._built:
            self._stale.update((cluster.name, name) for name in cluster.nodes)

    def largest(
        self, clusters: Mapping[str, ClusterView], with_gpus: bool, count: int
    ) -> list[NodeView]:
        """Up to `count` empty nodes of `clusters` (the snapshot's, every time) with (or
        without) GPUs, largest first."""
        self._bring_up_to_date(clusters)
        found = islice(self._orders[with_gpus], count)
        return [clusters[cluster].nodes[name] for *_, cluster, name in found]

    def _bring_up_to_date(self, clusters: Mapping[str, ClusterView]) -> None:
        if not self._built:
            self._build(clusters)
            return
        for cluster, name in self._stale:
            view = clusters[cluster]
            self._place((cluster, name), _slot(view, view.nodes[name]))
        self._stale.clear()

    def _build(self, clusters: Mapping[str, ClusterView]) -> None:
        for where, slot in _every_slot(clusters):
            self._slots[where] = slot
        for with_gpus in (False, True):
            self._orders[with_gpus] = SortedRuns(
                slot for has_gpus, slot in self._slots.values() if has_gpus is with_gpus
            )
        self._built = True

    def _place(self, where: tuple[str, str], slot: tuple[bool, Slot] | None) -> None:
        old = self._slots.get(where)
        if slot == old:
            return
        if old is not None:
            self._orders[old[0]].remove(old[1])
            del self._slots[where]
        if slot is not None:
            self._orders[slot[0]].add(slot[1])
            self._slots[where] = slot
