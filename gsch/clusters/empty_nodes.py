"""The fleet's empty nodes, largest first: ready nodes of ready clusters on which gsch holds
nothing (no reservation, no placement being committed), as bin packing needs them to keep the
largest back for the requests that need it (`policies/packing.py`).

Fleet-wide, derived from the folded state alone (pending commits included, as every score
sees them), so a plan that reads it is still a function of request and snapshot: the dry run
decides what a worker decides on the same snapshot. Built when first read (one pass over the
fleet and a heapify: about a second at a million empty nodes, less where most are in use),
then kept current: a change of a node is noted only when the node is in the index or holds
nothing now, and looked at when the index is next read; an entry is added only when its node
becomes empty or is re-declared (size, readiness), and one whose node stopped being empty is
dropped when a read reaches it. Most folds are reservations on nodes already in use: one
check each.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from gsch.model.resources import Resources

if TYPE_CHECKING:
    from gsch.clusters.snapshot import ClusterView, NodeView

_NOTHING = Resources()
# A node's place: largest first by free GPUs, then cpu, then memory (negated: the heaps
# ascend); equal sizes by cluster and node name, so the order is total and the same on every
# snapshot of the same events.
Slot = tuple[int, int, int, str, str]
# A heap is compacted when it holds more than this many entries beyond twice its live ones
# (entries of nodes that stopped being empty wait there until a read reaches them).
SLACK = 1024


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
    # Free is allocatable less others' pods on a node gsch holds nothing on (as `largeness`
    # computes it, without building the amounts: a million of these on the first read).
    a, f = node.allocatable, node.foreign
    return a.gpu > 0, (
        f.gpu - a.gpu,
        f.cpu_m - a.cpu_m,
        f.memory - a.memory,
        cluster.name,
        node.name,
    )


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
    others). Each order is a heap: built in linear time, read at its front only."""

    def __init__(self) -> None:
        self._built = False
        self._slots: dict[tuple[str, str], tuple[bool, Slot]] = {}
        self._live = {False: 0, True: 0}  # entries of `_slots` per order
        self._heaps: dict[bool, list[Slot]] = {False: [], True: []}
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
        heap = self._heaps[with_gpus]
        taken: list[Slot] = []
        while len(taken) < count and heap:
            entry = heapq.heappop(heap)
            # An entry is live while its node's slot is still this one; a node that went
            # and came back unchanged has two, which pop one after the other.
            if self._slots.get(entry[3:]) == (with_gpus, entry) and entry not in taken[-1:]:
                taken.append(entry)
        for entry in taken:
            heapq.heappush(heap, entry)
        return [clusters[cluster].nodes[name] for *_, cluster, name in taken]

    def _bring_up_to_date(self, clusters: Mapping[str, ClusterView]) -> None:
        if not self._built:
            self._slots = dict(_every_slot(clusters))
            self._rebuild()
            self._built = True
            return
        for cluster, name in self._stale:
            view = clusters[cluster]
            self._place((cluster, name), _slot(view, view.nodes[name]))
        self._stale.clear()
        if any(len(self._heaps[g]) > 2 * self._live[g] + SLACK for g in (False, True)):
            self._rebuild()

    def _rebuild(self) -> None:
        """Each order's heap from the live entries alone."""
        heaps: dict[bool, list[Slot]] = {False: [], True: []}
        for with_gpus, slot in self._slots.values():
            heaps[with_gpus].append(slot)
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = heaps
        self._live = {g: len(heap) for g, heap in heaps.items()}

    def _place(self, where: tuple[str, str], slot: tuple[bool, Slot] | None) -> None:
        old = self._slots.get(where)
        if slot == old:
            return
        if old is not None:  # its heap entry is dropped when a read reaches it
            del self._slots[where]
            self._live[old[0]] -= 1
        if slot is not None:
            self._slots[where] = slot
            self._live[slot[0]] += 1
            heapq.heappush(self._heaps[slot[0]], slot[1])
