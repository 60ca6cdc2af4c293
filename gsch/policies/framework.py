"""The placement framework, after kube-scheduler's: filters say why a node or cluster is out,
scorers rank what is left, a profile composes them, and levels are tried in order.

Two stages, as in GEdge's competition flow: inside one level, each competing cluster is
filtered, its nodes filtered and scored; the cluster's best node stands for the cluster; the
profile ranks the clusters; the best one wins. The first level with a winner is used.
"""

from __future__ import annotations

import heapq
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.events import Explanation, LevelTrace, Placement
from gsch.model.request import Request, is_selector, selector_requirements

# A node filter returns None when the node passes, else the reason it is out.
NodeFilter = Callable[[Request, NodeView], str | None]
ClusterFilter = Callable[[Request, ClusterView | None], str | None]
NodeScorer = Callable[[Request, NodeView], float]


@dataclass(frozen=True)
class Ranking:
    """Scoring that needs more than one node: prepared once per plan from the snapshot (e.g.
    the latencies measured from the request's source)."""

    node_scorer: NodeScorer
    # Higher is better; None when there is no measurement: such clusters rank last.
    cluster_rank: Callable[[str], float | None]
    unmeasured: str  # what the explanation says about a cluster without a measurement
    notes: tuple[str, ...] = ()  # said once per level (e.g. a source that could not be found)


@dataclass(frozen=True)
class Profile:
    name: str
    cluster_filters: Sequence[ClusterFilter]
    node_filters: Sequence[NodeFilter]
    node_scorer: NodeScorer
    # When true, clusters of a level are taken in the order the request lists them instead of
    # by score (GSelectedCluster: the user's order is the preference).
    keep_listed_order: bool = False
    # When set, clusters are ranked by what it prepares instead of by their best node's score.
    prepare: Callable[[Request, ClusterSnapshot], Ranking] | None = None
    # When true, a level places one copy on *every* cluster it names, or nothing (GSetClusters).
    every_cluster: bool = False
    # An upper bound of what any node of a cluster can score, from cluster aggregates: clusters
    # are then visited best bound first, and the search stops once no unvisited cluster can win.
    cluster_bound: Callable[[Request, ClusterView], float] | None = None


@dataclass(frozen=True)
class Decision:
    placements: tuple[Placement, ...]
    level_index: int
    explanation: Explanation

    @property
    def placed(self) -> bool:
        return bool(self.placements)


@dataclass(frozen=True)
class _Candidate:
    cluster: str
    node: NodeView
    score: float


def _best_node(
    profile: Profile, request: Request, cluster: ClusterView, scorer: NodeScorer
) -> tuple[_Candidate | None, list[str]]:
    # The planner's inner loop: plain loops, and the tie hash only when points are equal.
    rejected: Counter[str] = Counter()
    filters = profile.node_filters
    best: _Candidate | None = None
    best_points = 0
    best_tie = 0
    for node in cluster.nodes.values():
        reason = None
        for check in filters:
            reason = check(request, node)
            if reason is not None:
                break
        if reason is not None:
            rejected[reason] += 1
            continue
        score = scorer(request, node)
        # Scores are compared as whole points, as kube-scheduler's integer node scores are:
        # nodes within a point of each other tie. Ties are broken by a hash of request and
        # node: reproducible for a request (a dry run equals the worker's decision), but
        # different requests spread over the tied nodes instead of all racing competing
        # workers for the same one (kube-scheduler picks among ties at random).
        points = round(score)
        if best is None or points > best_points:
            best, best_points, best_tie = _Candidate(cluster.name, node, score), points, -1
        elif points == best_points:
            if best_tie < 0:
                best_tie = _tie(request, best.node.name)
            tie = _tie(request, node.name)
            if tie < best_tie:
                best, best_tie = _Candidate(cluster.name, node, score), tie
    total = len(cluster.nodes)
    reasons = [f"{count}/{total} nodes: {reason}" for reason, count in rejected.most_common()]
    if best is None and total == 0:
        reasons.append("cluster has no nodes")
    return best, reasons


def _tie(request: Request, name: str) -> int:
    return zlib.crc32(f"{request.request_id}/{name}".encode())


def plan(profile: Profile, request: Request, snapshot: ClusterSnapshot) -> Decision:
    ranking = profile.prepare(request, snapshot) if profile.prepare is not None else None
    scorer = ranking.node_scorer if ranking is not None else profile.node_scorer
    traces: list[LevelTrace] = []
    for index, listed in enumerate(request.levels):
        level, notes = _expand(listed, snapshot)
        rejections: dict[str, list[str]] = {
            entry: ["label selector matched no cluster"]
            for entry, note in notes.items()
            if note == NO_MATCH
        }
        admitted: list[ClusterView] = []
        for name in level:
            cluster = snapshot.clusters.get(name)
            reason = next((r for f in profile.cluster_filters if (r := f(request, cluster))), None)
            if reason is not None or cluster is None:
                rejections[name] = [reason or "unknown cluster"]
            else:
                admitted.append(cluster)
        bounded = (
            profile.cluster_bound is not None
            and ranking is None
            and not profile.keep_listed_order
            and not profile.every_cluster
            and len(admitted) > BOUND_FROM
        )
        if bounded:
            candidates, skipped = _best_first(profile, request, admitted, scorer, rejections)
            if skipped:
                notes["not visited"] = (
                    f"{skipped} cluster(s) whose best possible score could not win"
                )
        else:
            candidates = []
            for cluster in admitted:
                best, reasons = _best_node(profile, request, cluster, scorer)
                if best is None:
                    rejections[cluster.name] = reasons
                else:
                    candidates.append(best)
        if ranking is not None:
            ranks = {c.cluster: ranking.cluster_rank(c.cluster) for c in candidates}
            notes.update({name: ranking.unmeasured for name, rank in ranks.items() if rank is None})
            notes.update({f"note {i + 1}": note for i, note in enumerate(ranking.notes)})
            candidates.sort(key=lambda c: _ranked(ranks[c.cluster], c.cluster))
            scores = {name: round(rank, 3) for name, rank in ranks.items() if rank is not None}
        else:
            if not profile.keep_listed_order:
                candidates.sort(key=lambda c: (-c.score, c.cluster))
            scores = {c.cluster: round(c.score, 3) for c in candidates}
        winner = candidates[0] if candidates else None
        traces.append(
            LevelTrace(
                index=index,
                # A level resolved to a large part of the fleet is shown as listed (the notes
                # say what its selectors matched), so decision events stay small.
                candidates=level if len(level) <= BOUND_FROM else listed,
                rejections=_capped(rejections, notes),
                scores=scores,
                chosen=_chosen(profile, candidates, rejections),
                notes=notes,
            )
        )
        if profile.every_cluster:
            if candidates and not rejections:
                placements = tuple(
                    Placement(c.cluster, c.node.name, request.demand) for c in candidates
                )
                where = ", ".join(f"{p.cluster}/{p.node}" for p in placements)
                summary = f"level {index + 1} of {len(request.levels)}: {where} ({profile.name})"
                return Decision(placements, index, Explanation(tuple(traces), summary))
            continue  # all or nothing: one cluster that cannot take a copy fails the level
        if winner is not None:
            placement = Placement(winner.cluster, winner.node.name, request.demand)
            summary = (
                f"level {index + 1} of {len(request.levels)}: {winner.cluster}/{winner.node.name}"
                f" ({profile.name})"
            )
            return Decision((placement,), index, Explanation(tuple(traces), summary))
    summary = "no level could place the request: " + "; ".join(
        [
            f"{cluster}: {', '.join(reasons)}"
            for trace in traces
            for cluster, reasons in trace.rejections.items()
        ][:BOUND_FROM]
    )
    return Decision((), -1, Explanation(tuple(traces), summary))


# Levels of up to this many clusters are scanned whole, so every cluster gets its own score
# or reasons in the explanation; larger ones (label selectors over a big fleet) are searched
# best bound first and the explanation counts the clusters it did not need to visit.
BOUND_FROM = 64


def _capped(rejections: dict[str, list[str]], notes: dict[str, str]) -> dict[str, list[str]]:
    """At most BOUND_FROM clusters' reasons in an event; the rest summarised in a note."""
    if len(rejections) <= BOUND_FROM:
        return rejections
    names = list(rejections)
    kept = {name: rejections[name] for name in names[:BOUND_FROM]}
    rest = Counter("; ".join(rejections[name]) for name in names[BOUND_FROM:])
    common = "; ".join(f"{reason} ({count})" for reason, count in rest.most_common(3))
    notes["more rejected"] = f"{len(names) - BOUND_FROM} more clusters rejected: {common}"
    return kept


def _best_first(
    profile: Profile,
    request: Request,
    clusters: list[ClusterView],
    scorer: NodeScorer,
    rejections: dict[str, list[str]],
) -> tuple[list[_Candidate], int]:
    """Branch and bound over a level's clusters: visit them by bound (then name), and stop when
    no unvisited cluster could beat the best found, which is then exactly the cluster a full
    scan ranks first (highest score, then smallest name). Cost follows what is visited, not
    the size of the level."""
    assert profile.cluster_bound is not None
    heap = [(-profile.cluster_bound(request, c), c.name, c) for c in clusters]
    heapq.heapify(heap)
    best: _Candidate | None = None
    while heap:
        negative_bound, name, cluster = heap[0]
        if best is not None and (-negative_bound, _neg(name)) < (best.score, _neg(best.cluster)):
            break
        heapq.heappop(heap)
        found, reasons = _best_node(profile, request, cluster, scorer)
        if found is None:
            rejections[name] = reasons
        elif best is None or (found.score, _neg(name)) > (best.score, _neg(best.cluster)):
            best = found
    return ([best] if best is not None else []), len(heap)


def _neg(name: str) -> tuple[int, ...]:
    # Orders names in reverse, so "higher is better" comparisons prefer the smaller name.
    return tuple(-ord(char) for char in name)


NO_MATCH = "matched no cluster"


def _expand(
    level: tuple[str, ...], snapshot: ClusterSnapshot
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The clusters a level names: names as listed, label selectors resolved against the
    snapshot now (so a cluster that joins the fleet is found), without repeats."""
    if not any(is_selector(entry) for entry in level):
        return level, {}
    names: dict[str, None] = {}  # an ordered set
    notes: dict[str, str] = {}
    for entry in level:
        matched = snapshot.select(selector_requirements(entry)) if is_selector(entry) else [entry]
        if is_selector(entry):
            notes[entry] = _matched_note(matched)
        names.update(dict.fromkeys(matched))
    return tuple(names), notes


def _matched_note(matched: list[str]) -> str:
    if not matched:
        return NO_MATCH
    shown = ", ".join(matched[:5])
    return f"matched {shown}" if len(matched) <= 5 else f"matched {len(matched)}: {shown}, …"


def _chosen(
    profile: Profile, candidates: list[_Candidate], rejections: dict[str, list[str]]
) -> str | None:
    if profile.every_cluster:
        if not candidates or rejections:
            return None
        return ", ".join(f"{c.cluster}/{c.node.name}" for c in candidates)
    return f"{candidates[0].cluster}/{candidates[0].node.name}" if candidates else None


def _ranked(rank: float | None, cluster: str) -> tuple[int, float, str]:
    """Measured clusters first, best rank first; the rest after them in name order."""
    return (0, -rank, cluster) if rank is not None else (1, 0.0, cluster)
