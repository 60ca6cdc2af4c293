"""The work inside one level: resolve the clusters it names, filter clusters, filter and score
their nodes, keep each cluster's best node, and for large levels visit clusters best bound
first.

Everything the explanation needs is collected on the way (rejections per cluster, the node
filters' reasons counted over the level, whether any rejection was UNSCHEDULABLE), so
nothing is visited twice to explain a decision.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView
from gsch.model.request import Request, is_selector, selector_requirements
from gsch.policies.framework import (
    Candidate,
    ClusterFilter,
    Code,
    NodeFilter,
    NodeScorer,
    Status,
    unresolvable,
)
from gsch.policies.rules import PlannerRules

UNSCHEDULABLE = Code.UNSCHEDULABLE
UNKNOWN_CLUSTER = unresolvable("unknown cluster", "ClusterKnown")
NO_NODES = unresolvable("cluster has no nodes", "ClusterNodes")


@dataclass
class LevelScan:
    request: Request
    rules: PlannerRules
    cluster_filters: Sequence[ClusterFilter]
    node_filters: Sequence[NodeFilter]
    scorer: NodeScorer
    rejections: dict[str, list[str]] = field(default_factory=dict)
    unschedulable: bool = False  # some rejection could be lifted by a change of cluster state
    notes: dict[str, str] = field(default_factory=dict)
    filtered: Counter[str] = field(default_factory=Counter)  # node reasons over the level
    nodes: int = 0  # nodes the filters looked at
    visited: int = 0  # clusters whose nodes were looked at
    walked: int = 0  # clusters a best-first walk took up (visited or rejected by a filter)

    def reject(self, name: str, reasons: list[str], unschedulable: bool) -> None:
        self.rejections[name] = reasons
        self.unschedulable = self.unschedulable or unschedulable

    def reject_status(self, name: str, status: Status) -> None:
        self.reject(name, [status.reason], status.unschedulable)

    def admit(self, name: str, cluster: ClusterView | None) -> ClusterView | None:
        """The cluster when every cluster filter passes it; else None, with the reason kept."""
        for check in self.cluster_filters:
            status = check(self.request, cluster, self.rules)
            if status is not None:
                self.reject_status(name, status)
                return None
        if cluster is None:
            self.reject_status(name, UNKNOWN_CLUSTER)
        return cluster

    def visit(self, cluster: ClusterView) -> Candidate | None:
        """The cluster's best node, or None with the reasons its nodes were rejected."""
        best, rejected, unschedulable = _best_node(
            self.request, cluster, self.node_filters, self.scorer
        )
        total = len(cluster.nodes)
        self.visited += 1
        self.nodes += total
        self.filtered.update(rejected)
        if best is None:
            if not rejected:
                self.reject_status(cluster.name, NO_NODES)
                return None
            reasons = [
                f"{count}/{total} nodes: {reason}" for reason, count in rejected.most_common()
            ]
            self.reject(cluster.name, reasons, unschedulable)
        return best

    def visit_all(self, clusters: Iterable[ClusterView]) -> list[Candidate]:
        return [found for cluster in clusters if (found := self.visit(cluster)) is not None]

    def walk(
        self,
        ordered: Iterable[tuple[float, str]],
        clusters: Mapping[str, ClusterView],
        admitted: bool = False,
    ) -> Candidate | None:
        """Branch and bound: visit clusters in (-bound, name) order and stop when no cluster
        further on could beat the best found. That is exactly the cluster a full scan ranks
        first (`cluster_order`: highest score, ties by the request's hash of the cluster).
        `admitted`: the cluster filters already ran."""
        best: Candidate | None = None
        seen: set[str] = set()  # several selectors of one level may match one cluster
        order = cluster_order(self.request)
        for negative_bound, name in ordered:
            if best is not None:
                # Every cluster further on is bounded by this one's bound: once that is below
                # the best score, none can win. At the best score exactly, this one could at
                # most tie, and if it loses the tie it is passed over (a later one may not).
                if -negative_bound < best.score:
                    break
                if order_of(self.request, -negative_bound, name) > order(best):
                    continue
            if name in seen:
                continue
            seen.add(name)
            self.walked += 1
            cluster = clusters.get(name)
            if not admitted:
                cluster = self.admit(name, cluster)
            if cluster is None:
                continue
            missing = self.request.demand.shortfalls(cluster.max_free)
            if missing:
                # No ready node has that much free (pending commits only lower it): out
                # without a look at its nodes, so an unplaceable request over a large level
                # costs a check per cluster, not a scan of every node.
                reason = f"insufficient {', '.join(missing)} on every ready node"
                self.reject(name, [reason], unschedulable=True)
                continue
            found = self.visit(cluster)
            if found is not None and (best is None or order(found) < order(best)):
                best = found
        return best

    def walk_by_bound(
        self,
        admitted: list[ClusterView],
        clusters: Mapping[str, ClusterView],
        bound: Callable[[ClusterView], float],
    ) -> Candidate | None:
        """A large level already resolved and filtered: walk it best bound first."""
        heap = [(-bound(c), c.name) for c in admitted]
        heapq.heapify(heap)
        ordered = (heapq.heappop(heap) for _ in range(len(heap)))
        found = self.walk(ordered, clusters, admitted=True)
        self.note_unvisited(len(admitted))
        return found

    def walk_rankings(
        self,
        listed: tuple[str, ...],
        snapshot: ClusterSnapshot,
        bound: Callable[[ClusterView], float],
        key: Hashable,
    ) -> Candidate | None:
        """A level whose selectors match many clusters: walk the snapshot's standing rankings
        of those clusters by bound (kept current from events), merged, so a request costs what
        it visits and nothing per cluster of the fleet."""
        orders = []
        names = []
        for entry in listed:
            if is_selector(entry):
                self.note_match(entry, snapshot.select(selector_requirements(entry)))
                orders.append(snapshot.ranked(selector_requirements(entry), key, bound).order)
            else:
                names.append(entry)
        if names:  # names listed beside selectors: few, ranked here
            clusters = [c for name in names if (c := snapshot.clusters.get(name)) is not None]
            orders.append(sorted((-bound(c), c.name) for c in clusters))
            for name in names:
                if name not in snapshot.clusters:
                    self.reject_status(name, UNKNOWN_CLUSTER)
        found = self.walk(heapq.merge(*orders), snapshot.clusters)
        # Clusters two selectors both match count twice here: the count is for reading only.
        self.note_unvisited(sum(len(order) for order in orders))
        return found

    def note_unvisited(self, total: int) -> None:
        skipped = total - self.walked
        if skipped > 0:
            self.notes["not visited"] = (
                f"{skipped} cluster(s) whose best possible score could not win"
            )

    def expand(self, level: tuple[str, ...], snapshot: ClusterSnapshot) -> tuple[str, ...]:
        """The clusters a level names: names as listed, label selectors resolved against the
        snapshot now (so a cluster that joins the fleet is found), without repeats. A selector
        that matches nothing is a rejection of its own."""
        if not any(is_selector(entry) for entry in level):
            return level
        names: dict[str, None] = {}  # an ordered set
        for entry in level:
            if not is_selector(entry):
                names[entry] = None
                continue
            matched = snapshot.select(selector_requirements(entry))
            self.note_match(entry, matched)
            names.update(dict.fromkeys(matched))
        return tuple(names)

    def note_match(self, entry: str, matched: list[str]) -> None:
        """What a selector matched, for the explanation; matching nothing is a rejection."""
        if not matched:
            self.notes[entry] = NO_MATCH
            self.reject_status(entry, SELECTOR_UNMATCHED)
            return
        shown = ", ".join(matched[:5])
        many = len(matched) > 5
        self.notes[entry] = f"matched {len(matched)}: {shown}, …" if many else f"matched {shown}"


NO_MATCH = "matched no cluster"
SELECTOR_UNMATCHED = unresolvable("label selector matched no cluster", "ClusterSelector")


def matched(listed: tuple[str, ...], snapshot: ClusterSnapshot) -> int:
    """How many clusters a level names (selectors counted by what they match; an overlap of
    two selectors counts twice, which only decides how the level is searched)."""
    return sum(
        len(snapshot.select(selector_requirements(entry))) if is_selector(entry) else 1
        for entry in listed
    )


def _best_node(
    request: Request, cluster: ClusterView, filters: Sequence[NodeFilter], scorer: NodeScorer
) -> tuple[Candidate | None, Counter[str], bool]:
    """The best node, the nodes rejected by reason, and whether any rejection was
    UNSCHEDULABLE."""
    # The planner's inner loop: plain loops, and the tie hash only when points are equal.
    # Rejections are counted by their text (one text, one filter, one code).
    rejected: Counter[str] = Counter()
    unschedulable = False
    best: Candidate | None = None
    best_points = 0
    best_tie = 0
    for node in cluster.nodes.values():
        status = None
        for check in filters:
            status = check(request, node)
            if status is not None:
                break
        if status is not None:
            rejected[status.reason] += 1
            unschedulable = unschedulable or status.code is UNSCHEDULABLE
            continue
        score = scorer(request, node)
        # Scores are compared as whole points, as kube-scheduler's integer node scores are:
        # nodes within a point of each other tie. Ties are broken by a hash of request and
        # node: reproducible for a request (a dry run equals the worker's decision), but
        # different requests spread over the tied nodes instead of all racing competing
        # workers for the same one (kube-scheduler picks among ties at random).
        points = round(score)
        if best is None or points > best_points:
            best, best_points, best_tie = Candidate(cluster.name, node, score), points, -1
        elif points == best_points:
            if best_tie < 0:
                best_tie = _tie(request, best.node.name)
            tie = _tie(request, node.name)
            if tie < best_tie:
                best, best_tie = Candidate(cluster.name, node, score), tie
    return best, rejected, unschedulable


def _tie(request: Request, name: str) -> int:
    # A hash that mixes well: CRC32 is linear, so with three or more tied names a few of its
    # bits decide the order and one name wins half the ties (measured: 300 of 600 where a
    # third was due). BLAKE2b's first 8 bytes spread them evenly, in well under a microsecond.
    digest = hashlib.blake2b(f"{request.request_id}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# A cluster's place in a level's ranking: best score first, then the tie hash, then the name
# (only for the rare equal hashes, so the order is total).
ClusterOrder = tuple[float, int, str]


def order_of(request: Request, score: float, cluster: str) -> ClusterOrder:
    """Where a cluster with best-node score `score` ranks for `request` (lower first).

    Equal scores are broken as node ties are: by a hash of request and cluster, so a
    request's decision is reproducible (the dry run equals the worker's) while equal clusters
    share the load. Breaking them by name sent everything to the cluster whose name sorts
    first, so a latency-blind baseline looked good or bad by its names alone."""
    return -score, _tie(request, cluster), cluster


def cluster_order(request: Request) -> Callable[[Candidate], ClusterOrder]:
    """`order_of` as a sort key over a level's candidates."""
    return lambda candidate: order_of(request, candidate.score, candidate.cluster)
