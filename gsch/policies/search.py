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
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gsch.clusters.aggregates import NO_NODES as NO_READY_NODES
from gsch.clusters.rankings import Entry, SortedRuns
from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.request import Request, is_selector, selector_requirements
from gsch.policies.framework import (
    BOUND_SLACK,
    BoundSearch,
    Candidate,
    ClusterFilter,
    Code,
    NodeFilter,
    NodeScorer,
    Status,
    TopNodes,
    micro,
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
    top_nodes: TopNodes | None = None  # the nodes a visit scores (see ScorePlugin.top_nodes)
    # Whether the aggregates show every node filter passing every node of a cluster (None:
    # they never can for these filters), so a visit need not run the filters node by node.
    every_node_passes: Callable[[ClusterView], bool] | None = None
    rejections: dict[str, list[str]] = field(default_factory=dict)
    unschedulable: bool = False  # some rejection could be lifted by a change of cluster state
    notes: dict[str, str] = field(default_factory=dict)
    filtered: Counter[str] = field(default_factory=Counter)  # node reasons over the level
    nodes: int = 0  # nodes the filters looked at
    visited: int = 0  # clusters whose nodes were looked at
    walked: int = 0  # clusters a walk took up (visited or rejected by a filter)
    stopped_at: float | None = None  # the bound at which a best-first walk stopped
    tied_out: int = 0  # clusters passed over: bounded at the best score, losing its tie
    ties: Ties = field(init=False)

    def __post_init__(self) -> None:
        self.ties = Ties(self.request.request_id)

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
        top = self.top_nodes(self.request, cluster) if self.top_nodes is not None else None
        if top is not None and len(top) == 1:
            node = cluster.nodes[top[0]]
            if all(check(self.request, node) is None for check in self.node_filters):
                # The aggregates say this node alone has the top score in whole points: it is
                # what a scan of every node would choose, so only it is looked at.
                self.visited += 1
                self.nodes += 1
                return Candidate(cluster.name, node, self.scorer(self.request, node))
        total = len(cluster.nodes)
        if top and self.every_node_passes is not None and self.every_node_passes(cluster):
            # A scan would reject no node, and only these can have its best points: the
            # scan's choice is the first of them by the tie hash, found without a filter.
            self.visited += 1
            self.nodes += total
            return _first_by_tie(self.request, cluster, top, self.scorer, self.ties)
        if top:
            best, rejected, unschedulable = _best_of_top(
                self.request, cluster, self.node_filters, self.scorer, top, self.ties
            )
        else:
            best, rejected, unschedulable = _best_node(
                self.request, cluster, self.node_filters, self.scorer, self.ties
            )
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

    def take_up(self, name: str, cluster: ClusterView | None, admitted: bool) -> Candidate | None:
        """One cluster of a walk: filtered (unless `admitted`), out at once when no ready node
        has room for the demand, else visited."""
        self.walked += 1
        if not admitted:
            cluster = self.admit(name, cluster)
        if cluster is None:
            return None
        if self.unschedulable and cluster.aggregates is not NO_READY_NODES:
            missing = self.request.demand.shortfalls(cluster.max_free)
            if missing:
                # No ready node has that much free (pending commits only lower it): out
                # without a look at its nodes, so an unplaceable request over a large level
                # costs a check per cluster, not a scan of every node. Only once some
                # rejection already made the request wait for capacity: a scan of these
                # nodes could only add to that (a taint, say), not take it away.
                reason = f"insufficient {', '.join(missing)} on every ready node"
                self.reject(name, [reason], unschedulable=True)
                return None
        return self.visit(cluster)

    def walk(
        self,
        orders: Sequence[Iterator[Entry]],
        clusters: Mapping[str, ClusterView],
        bound: Callable[[ClusterView], float],
        admitted: bool = False,
    ) -> Candidate | None:
        """Branch and bound over one or more orders of the same clusters, each as (-bound,
        name) ascending by its own side of the bound, a cluster's `bound` being at most its
        bound in every order. Of the orders' fronts, the one with the highest `bound` is
        visited next; the walk stops when the front of some order is bounded below the best
        score found (every cluster after it, and so every unvisited one, is bounded by it).
        A front bounded at exactly the best score could at most tie, and is passed over when
        it would lose the tie (`order_of`: by the request's hash); later ones may not. So the
        walk chooses exactly the cluster a full scan ranks first (`cluster_order`).
        `admitted`: the cluster filters already ran."""
        best: Candidate | None = None
        order = cluster_order(self.request)
        seen: set[str] = set()  # several selectors of one level may match one cluster
        ties: dict[str, tuple[int, str]] = {}  # the best's tie key, computed once
        fronts = [next(ranked, None) for ranked in orders]
        while True:
            chosen: tuple[tuple[float, str], int] | None = None
            for index, ranked in enumerate(orders):
                front = fronts[index] = self._front(ranked, fronts[index], seen, best, ties)
                if front is None:
                    return best  # every cluster of the level was taken up
                if best is not None and micro(BOUND_SLACK - front[0]) < micro(best.score):
                    self.stopped_at = -front[0]
                    return best
                # With one order its bound is the cluster's; with more, the least of them.
                cluster = clusters.get(front[1])
                rank = (front[0] if len(orders) == 1 or cluster is None else -bound(cluster),
                        front[1])  # fmt: skip
                if chosen is None or rank < chosen[0]:
                    chosen = (rank, index)
            assert chosen is not None  # a level has at least one order
            (_, name), index = chosen
            fronts[index] = next(orders[index], None)
            seen.add(name)
            found = self.take_up(name, clusters.get(name), admitted)
            if found is not None and (best is None or order(found) < order(best)):
                best = found
                ties = {found.cluster: order(found)[1:]}

    def _front(
        self,
        ranked: Iterator[Entry],
        front: Entry | None,
        seen: set[str],
        best: Candidate | None,
        ties: dict[str, tuple[int, str]],
    ) -> Entry | None:
        """The order's first entry not taken up yet, passing over (into `seen`) those bounded
        at exactly the best score that would lose the tie to it (`order_of`'s tie part;
        `ties` holds the best's)."""
        while front is not None:
            name = front[1]
            if name not in seen:
                if best is None or micro(BOUND_SLACK - front[0]) != micro(best.score):
                    return front
                if (self.ties(name), name) < ties[best.cluster]:
                    return front
                seen.add(name)
                self.tied_out += 1
            front = next(ranked, None)
        return None

    def walk_by_bound(
        self,
        admitted: list[ClusterView],
        clusters: Mapping[str, ClusterView],
        search: BoundSearch,
    ) -> Candidate | None:
        """A large level already resolved and filtered: walk it best bound first."""
        orders = []
        for side in search.sides:
            entries = [(-side.limit(*side.rank(c)), c.name) for c in admitted]
            heapq.heapify(entries)
            orders.append(heapq.heappop(entries) for _ in range(len(entries)))
        found = self.walk(orders, clusters, search.bound, admitted=True)
        self.note_unvisited(len(admitted), found)
        return found

    def walk_rankings(
        self, listed: tuple[str, ...], snapshot: ClusterSnapshot, search: BoundSearch
    ) -> Candidate | None:
        """A level whose selectors match many clusters: walk the snapshot's standing rankings
        of those clusters (kept current from events), merged over selectors and groups, each
        entry's bound computed for this request only when the walk reaches it, so a request
        costs what it visits and nothing per cluster of the fleet."""
        orders: list[list[Iterator[Entry]]] = [[] for _ in search.sides]
        names = []
        total = 0
        for entry in listed:
            if not is_selector(entry):
                names.append(entry)
                continue
            requirements = selector_requirements(entry)
            selected = snapshot.select(requirements)
            self.note_match(entry, selected)
            total += len(selected)
            for merged, side in zip(orders, search.sides, strict=True):
                ranked = snapshot.ranked(requirements, side.key, side.rank)
                merged.extend(
                    _bounded(runs, group, side.limit) for group, runs in ranked.groups.items()
                )
        if names:  # names listed beside selectors: few, ranked here
            known = [c for name in names if (c := snapshot.clusters.get(name)) is not None]
            total += len(known)
            for merged, side in zip(orders, search.sides, strict=True):
                merged.append(iter(sorted((-side.limit(*side.rank(c)), c.name) for c in known)))
            for name in names:
                if name not in snapshot.clusters:
                    self.reject_status(name, UNKNOWN_CLUSTER)
        merged_orders = [heapq.merge(*merged) for merged in orders]
        found = self.walk(merged_orders, snapshot.clusters, search.bound)
        self.note_unvisited(total, found)
        return found

    def walk_in_order(
        self, names: Iterable[str], clusters: Mapping[str, ClusterView]
    ) -> Candidate | None:
        """The first cluster in `names` order that has a node for the request (a level in
        the request's own order, or ranked by a measurement): nothing after it is visited."""
        seen: set[str] = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            found = self.take_up(name, clusters.get(name), admitted=False)
            if found is not None:
                return found
        return None

    def note_unvisited(self, total: int, best: Candidate | None) -> None:
        """Say what a best-first walk left out, and why (nothing when it took up all)."""
        skipped = total - self.walked
        if skipped <= 0 or best is None:
            return
        why = []
        if self.stopped_at is not None:
            why.append(
                f"by a bound from their aggregates no node of theirs scores above"
                f" {self.stopped_at:.3f}"
            )
        if self.tied_out:
            why.append(
                f"{self.tied_out} could at most tie with {best.cluster} and lose the tie (by the"
                " request's hash)"
            )
        if not why:
            return  # only clusters two selectors both match were counted twice
        self.notes["not visited"] = (
            f"{skipped} cluster(s) (one per selector matching them): {'; '.join(why)}, and"
            f" {best.cluster} scores {best.score:.3f}"
        )

    def note_passed_over(self, total: int, chosen: Candidate | None, why: str) -> None:
        """A walk in order stopped at `chosen`: say how many clusters after it it left."""
        skipped = total - self.walked
        if skipped > 0 and chosen is not None:
            self.notes["not visited"] = f"{skipped} cluster(s) after {chosen.cluster} ({why})"

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
    request: Request,
    cluster: ClusterView,
    filters: Sequence[NodeFilter],
    scorer: NodeScorer,
    ties: Callable[[str], int] | None = None,
) -> tuple[Candidate | None, Counter[str], bool]:
    """The best node, the nodes rejected by reason, and whether any rejection was
    UNSCHEDULABLE: every node filtered, every node that passes scored. `ties`: the request's
    tie hash (`Ties`), when one is at hand."""
    passing, rejected, unschedulable = _filtered(request, cluster, filters)
    tie_of = ties if ties is not None else Ties(request.request_id)
    return _highest(request, cluster.name, passing, scorer, tie_of), rejected, unschedulable


def _best_of_top(
    request: Request,
    cluster: ClusterView,
    filters: Sequence[NodeFilter],
    scorer: NodeScorer,
    top: tuple[str, ...],
    ties: Ties,
) -> tuple[Candidate | None, Counter[str], bool]:
    """What `_best_node` finds, knowing that `top` are the ready nodes with the highest score
    in whole points: every node filtered (the rejections are the explanation's), but only
    those of `top` that pass are scored, or, if the filters reject all of them, the rest."""
    passing, rejected, unschedulable = _filtered(request, cluster, filters)
    leading = set(top)
    contenders = [node.name for node in passing if node.name in leading]
    if contenders:
        # Tied in points above every other node: the scan keeps the first by the tie hash.
        return _first_by_tie(request, cluster, contenders, scorer, ties), rejected, unschedulable
    return _highest(request, cluster.name, passing, scorer, ties), rejected, unschedulable


def _filtered(
    request: Request, cluster: ClusterView, filters: Sequence[NodeFilter]
) -> tuple[list[NodeView], Counter[str], bool]:
    """The nodes every filter passes (in the cluster's order), the others counted by reason,
    and whether any rejection was UNSCHEDULABLE."""
    # The planner's inner loop: plain loops. Rejections are counted by their text (one
    # text, one filter, one code).
    rejected: Counter[str] = Counter()
    unschedulable = False
    passing = []
    for node in cluster.nodes.values():
        status = None
        for check in filters:
            status = check(request, node)
            if status is not None:
                break
        if status is None:
            passing.append(node)
            continue
        rejected[status.reason] += 1
        unschedulable = unschedulable or status.code is UNSCHEDULABLE
    return passing, rejected, unschedulable


def _highest(
    request: Request,
    cluster: str,
    nodes: list[NodeView],
    scorer: NodeScorer,
    ties: Callable[[str], int],
) -> Candidate | None:
    """The node that scores highest in whole points, ties broken by the tie hash."""
    best: Candidate | None = None
    best_points = 0
    best_tie = 0
    for node in nodes:
        score = scorer(request, node)
        # Scores are compared as whole points, as kube-scheduler's integer node scores are:
        # nodes within a point of each other tie. Ties are broken by a hash of request and
        # node: reproducible for a request (a dry run equals the worker's decision), but
        # different requests spread over the tied nodes instead of all racing competing
        # workers for the same one (kube-scheduler picks among ties at random). The hash
        # only when points are equal.
        points = round(score)
        if best is None or points > best_points:
            best, best_points, best_tie = Candidate(cluster, node, score), points, -1
        elif points == best_points:
            if best_tie < 0:
                best_tie = ties(best.node.name)
            tie = ties(node.name)
            if tie < best_tie:
                best, best_tie = Candidate(cluster, node, score), tie
    return best


def _first_by_tie(
    request: Request, cluster: ClusterView, tied: Sequence[str], scorer: NodeScorer, ties: Ties
) -> Candidate:
    """Of nodes tied in whole points, the one a scan keeps: the lowest tie hash, and of
    names that hash alike (as good as never), the first in the cluster's order of nodes, the
    scan's. A lone node's hash is never needed."""
    lowest = tied if len(tied) == 1 else ties.lowest(tied)
    name = lowest[0] if len(lowest) == 1 else next(n for n in cluster.nodes if n in lowest)
    chosen = cluster.nodes[name]
    return Candidate(cluster.name, chosen, scorer(request, chosen))


def _bounded(
    runs: SortedRuns, group: Hashable, limit: Callable[[Hashable, float], float]
) -> Iterator[Entry]:
    """A ranking group's entries as (-bound, name), best first: the bound is monotone in the
    ranked value within a group, so the order holds."""
    return ((-limit(group, -negative), name) for negative, name in runs)


def _tie(request: Request, name: str) -> int:
    # A hash that mixes well: CRC32 is linear, so with three or more tied names a few of its
    # bits decide the order and one name wins half the ties (measured: 300 of 600 where a
    # third was due). BLAKE2b's first 8 bytes spread them evenly, in well under a microsecond.
    digest = hashlib.blake2b(f"{request.request_id}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Ties:
    """`_tie` of one request for any name, from one hasher of the request's part copied per
    name: a scan hashes most nodes of a cluster whose nodes tie, and this halves each."""

    __slots__ = ("_prefix",)

    def __init__(self, request_id: str) -> None:
        self._prefix = hashlib.blake2b(f"{request_id}/".encode(), digest_size=8)

    def __call__(self, name: str) -> int:
        hasher = self._prefix.copy()
        hasher.update(name.encode())
        return int.from_bytes(hasher.digest(), "big")

    def lowest(self, names: Sequence[str]) -> Sequence[str]:
        """Those of `names` that hash lowest (one, unless names collide), in one loop:
        digests of one length compare as their big-endian numbers do."""
        copy = self._prefix.copy
        chosen: list[str] = []
        lowest = b""
        for name in names:
            hasher = copy()
            hasher.update(name.encode())
            digest = hasher.digest()
            if not chosen or digest < lowest:
                chosen, lowest = [name], digest
            elif digest == lowest:
                chosen.append(name)
        return chosen


# A cluster's place in a level's ranking: best score first (in millionths of a point, see
# `framework.micro`), then the tie hash, then the name (only for the rare equal hashes, so the
# order is total).
ClusterOrder = tuple[int, int, str]


def order_of(request: Request, score: float, cluster: str) -> ClusterOrder:
    """Where a cluster with best-node score `score` ranks for `request` (lower first).

    Equal scores are broken as node ties are: by a hash of request and cluster, so a
    request's decision is reproducible (the dry run equals the worker's) while equal clusters
    share the load. Breaking them by name sent everything to the cluster whose name sorts
    first, so a latency-blind baseline looked good or bad by its names alone. Scores are
    compared in millionths, so a search's bound (the same number computed another way, a
    rounding apart) compares with a score exactly."""
    return -micro(score), _tie(request, cluster), cluster


def cluster_order(request: Request) -> Callable[[Candidate], ClusterOrder]:
    """`order_of` as a sort key over a level's candidates."""
    return lambda candidate: order_of(request, candidate.score, candidate.cluster)
