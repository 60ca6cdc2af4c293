"""The placement framework, after kube-scheduler's: filters say why a node or cluster is out,
score plugins rank what is left, a profile composes them, and levels are tried in order.

Two stages, as in GEdge's competition flow: inside one level, each competing cluster is
filtered, its nodes filtered and scored; the cluster's best node stands for the cluster; the
profile ranks the clusters; the best one wins. The first level with a winner is used.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial

import msgspec

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.events import Explanation, LevelTrace, Placement
from gsch.model.request import Request, is_selector, selector_requirements
from gsch.model.resources import Resources
from gsch.policies.rules import DEFAULT_RULES, PlannerRules
from gsch.policies.search import (
    Candidate,
    ClusterFilter,
    LevelScan,
    NodeFilter,
    NodeScorer,
    ScorePlugin,
    combined,
)
from gsch.policies.tracing import (
    MAX_LISTED,
    TOP,
    level_trace,
    node_plugin_scores,
    unplaced_summary,
)

__all__ = ["ClusterFilter", "NodeFilter", "NodeScorer", "ScorePlugin"]


@dataclass(frozen=True)
class Ranking:
    """Scoring that needs more than one node: prepared once per plan from the snapshot (e.g.
    the latencies measured from the request's source)."""

    scorers: tuple[ScorePlugin, ...]  # how nodes are scored inside a cluster
    # Higher is better; None when there is no measurement: such clusters rank last.
    cluster_rank: Callable[[str], float | None]
    rank_plugin: str  # what the explanation calls the cluster ranking
    unmeasured: str  # what the explanation says about a cluster without a measurement
    notes: tuple[str, ...] = ()  # said once per level (e.g. a source that could not be found)
    shown: Callable[[float], float] = float  # a rank as the explanation shows it
    # When set, nothing can be placed (e.g. the source pod is unknown): every cluster of every
    # level is rejected with this reason, and the request waits for cluster state to tell more.
    blocked: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    cluster_filters: Sequence[ClusterFilter]
    node_filters: Sequence[NodeFilter]
    scorers: tuple[ScorePlugin, ...]
    # When true, clusters of a level are taken in the order the request lists them instead of
    # by score (GSelectedCluster: the user's order is the preference).
    keep_listed_order: bool = False
    # When set, clusters are ranked by what it prepares instead of by their best node's score.
    prepare: Callable[[Request, ClusterSnapshot, PlannerRules], Ranking] | None = None
    # When true, a level places one copy on *every* cluster it names, or nothing (GSetClusters).
    every_cluster: bool = False
    # An upper bound of what any node of a cluster can score, from cluster aggregates, given
    # the part of the request it depends on (`bound_variant`): clusters are then visited best
    # bound first, and the search stops once no unvisited cluster can win.
    cluster_bound: Callable[[Hashable, ClusterView], float] | None = None
    bound_variant: Callable[[Request], Hashable] | None = None
    node_scorer: NodeScorer = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_scorer", combined(self.scorers))

    @property
    def searches_by_bound(self) -> bool:
        return (
            self.cluster_bound is not None
            and self.bound_variant is not None
            and self.prepare is None
            and not self.keep_listed_order
            and not self.every_cluster
        )


@dataclass(frozen=True)
class Decision:
    placements: tuple[Placement, ...]
    level_index: int
    explanation: Explanation

    @property
    def placed(self) -> bool:
        return bool(self.placements)

    @property
    def waits_for_capacity(self) -> bool:
        """Whether some candidate was refused for want of capacity or readiness, so the
        request should wait for cluster state to change rather than be retried blindly."""
        return any(
            marker in reason
            for level in self.explanation.levels
            for reasons in level.rejections.values()
            for reason in reasons
            for marker in ("insufficient ", "not ready")
        )


# Levels of up to this many clusters are scanned whole, so every cluster gets its own score
# or reasons in the explanation; larger ones (label selectors over a big fleet) are searched
# best bound first and the explanation counts the clusters it did not need to visit.
BOUND_FROM = MAX_LISTED


def plan(
    profile: Profile,
    request: Request,
    snapshot: ClusterSnapshot,
    rules: PlannerRules = DEFAULT_RULES,
) -> Decision:
    ranking = profile.prepare(request, snapshot, rules) if profile.prepare is not None else None
    plugins = ranking.scorers if ranking is not None else profile.scorers
    scorer = combined(plugins) if ranking is not None else profile.node_scorer
    traces: list[LevelTrace] = []
    for index, listed in enumerate(request.levels):
        scan = LevelScan(request, rules, profile.cluster_filters, profile.node_filters, scorer)
        shown, candidates = _scan_level(profile, ranking, listed, snapshot, scan)
        if ranking is not None:
            ranks = {c.cluster: ranking.cluster_rank(c.cluster) for c in candidates}
            scan.notes.update({n: ranking.unmeasured for n, rank in ranks.items() if rank is None})
            scan.notes.update({f"note {i + 1}": note for i, note in enumerate(ranking.notes)})
            candidates.sort(key=lambda c: _ranked(ranks[c.cluster], c.cluster))
            scores = {name: round(rank, 3) for name, rank in ranks.items() if rank is not None}
            by_plugin = {
                ranking.rank_plugin: {
                    c.cluster: round(ranking.shown(rank), 3)
                    for c in candidates[:TOP]
                    if (rank := ranks[c.cluster]) is not None
                }
            }
        else:
            if not profile.keep_listed_order:
                candidates.sort(key=lambda c: (-c.score, c.cluster))
            scores = {c.cluster: round(c.score, 3) for c in candidates}
            by_plugin = {}
        by_plugin.update(node_plugin_scores(request, candidates, plugins))
        placements = _placements(profile, request, candidates, scan)
        where = ", ".join(f"{p.cluster}/{p.node}" for p in placements) or None
        traces.append(level_trace(index, shown, scan, scores, by_plugin, where))
        if placements:
            summary = f"level {index + 1} of {len(request.levels)}: {where} ({profile.name})"
            return Decision(placements, index, Explanation(tuple(traces), summary))
    return Decision((), -1, Explanation(tuple(traces), unplaced_summary(traces)))


def _scan_level(
    profile: Profile,
    ranking: Ranking | None,
    listed: tuple[str, ...],
    snapshot: ClusterSnapshot,
    scan: LevelScan,
) -> tuple[tuple[str, ...], list[Candidate]]:
    """The level's candidates (each cluster's best node), and the level as the explanation
    shows it: a level resolved to a large part of the fleet is shown as listed (the notes say
    what its selectors matched), so decision events stay small."""
    if profile.searches_by_bound and ranking is None and _matched(listed, snapshot) > BOUND_FROM:
        found = _search_selection(profile, listed, snapshot, scan)
        return listed, [found] if found is not None else []
    level = _expand(listed, snapshot, scan)
    shown = level if len(level) <= BOUND_FROM else listed
    if ranking is not None and ranking.blocked is not None:
        scan.rejections.update({name: [ranking.blocked] for name in level})
        return shown, []
    admitted = [
        cluster for name in level if (cluster := scan.admit(name, snapshot.clusters.get(name)))
    ]
    if profile.searches_by_bound and len(admitted) > BOUND_FROM:
        bound = _bound(profile, scan.request)
        heap = [(-bound(c), c.name) for c in admitted]
        heapq.heapify(heap)
        ordered = (heapq.heappop(heap) for _ in range(len(heap)))
        found = scan.walk(ordered, snapshot.clusters, admitted=True)
        _note_unvisited(scan, len(admitted))
        return shown, [found] if found is not None else []
    candidates = [found for cluster in admitted if (found := scan.visit(cluster)) is not None]
    return shown, candidates


def _search_selection(
    profile: Profile, listed: tuple[str, ...], snapshot: ClusterSnapshot, scan: LevelScan
) -> Candidate | None:
    """A level whose selectors match many clusters: walk the snapshot's standing rankings of
    those clusters by bound (kept current from events), merged, so a request costs what it
    visits and nothing per cluster of the fleet."""
    bound = _bound(profile, scan.request)
    key = (profile.name, bound.args[0])
    orders = []
    names = []
    for entry in listed:
        if is_selector(entry):
            _note_match(entry, snapshot.select(selector_requirements(entry)), scan)
            orders.append(snapshot.ranked(selector_requirements(entry), key, bound).order)
        else:
            names.append(entry)
    if names:  # names listed beside selectors: few, ranked here
        clusters = [c for name in names if (c := snapshot.clusters.get(name)) is not None]
        orders.append(sorted((-bound(c), c.name) for c in clusters))
        scan.rejections.update(
            {n: ["unknown cluster"] for n in names if n not in snapshot.clusters}
        )
    found = scan.walk(heapq.merge(*orders), snapshot.clusters)
    # Clusters two selectors both match count twice here: the count is for reading only.
    _note_unvisited(scan, sum(len(order) for order in orders))
    return found


def _bound(profile: Profile, request: Request) -> partial[float]:
    """The profile's cluster bound for this request (its variant of the request fixed)."""
    assert profile.cluster_bound is not None
    assert profile.bound_variant is not None
    return partial(profile.cluster_bound, profile.bound_variant(request))


def _note_unvisited(scan: LevelScan, total: int) -> None:
    skipped = total - scan.walked
    if skipped > 0:
        scan.notes["not visited"] = f"{skipped} cluster(s) whose best possible score could not win"


def _matched(listed: tuple[str, ...], snapshot: ClusterSnapshot) -> int:
    """How many clusters a level names (selectors counted by what they match; an overlap of
    two selectors counts twice, which only decides how the level is searched)."""
    return sum(
        len(snapshot.select(selector_requirements(entry))) if is_selector(entry) else 1
        for entry in listed
    )


NO_MATCH = "matched no cluster"


def _expand(level: tuple[str, ...], snapshot: ClusterSnapshot, scan: LevelScan) -> tuple[str, ...]:
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
        _note_match(entry, matched, scan)
        names.update(dict.fromkeys(matched))
    return tuple(names)


def _note_match(entry: str, matched: list[str], scan: LevelScan) -> None:
    """What a selector matched, for the explanation; matching nothing is a rejection."""
    if not matched:
        scan.notes[entry] = NO_MATCH
        scan.rejections[entry] = ["label selector matched no cluster"]
        return
    shown = ", ".join(matched[:5])
    many = len(matched) > 5
    scan.notes[entry] = f"matched {len(matched)}: {shown}, …" if many else f"matched {shown}"


def _placements(
    profile: Profile, request: Request, candidates: list[Candidate], scan: LevelScan
) -> tuple[Placement, ...]:
    if profile.every_cluster:
        # All or nothing: one cluster that cannot take a copy fails the level.
        if not candidates or scan.rejections:
            return ()
        return tuple(Placement(c.cluster, c.node.name, request.demand) for c in candidates)
    if not candidates:
        return ()
    return (Placement(candidates[0].cluster, candidates[0].node.name, request.demand),)


def _ranked(rank: float | None, cluster: str) -> tuple[int, float, str]:
    """Measured clusters first, best rank first; the rest after them in name order."""
    return (0, -rank, cluster) if rank is not None else (1, 0.0, cluster)


def plan_avoiding(
    profile: Profile,
    request: Request,
    snapshot: ClusterSnapshot,
    rules: PlannerRules,
    avoid: tuple[str, ...],
) -> Decision:
    """Plan without the clusters that refused the last binding (by name), falling back
    to all of them when nothing else fits: better the same cluster again than nothing.
    A level that is a set (GSetClusters places on every cluster it names) is not cut
    down to a smaller set: it is skipped whole."""
    if avoid:
        if profile.every_cluster:
            kept = (lvl if not set(lvl) & set(avoid) else () for lvl in request.levels)
        else:
            kept = (tuple(c for c in level if c not in avoid) for level in request.levels)
        levels = tuple(level for level in kept if level)
        if levels:  # an empty list would mean "every cluster"
            elsewhere = msgspec.structs.replace(request, levels=levels)
            decision = plan(profile, elsewhere, snapshot, rules)
            if decision.placed:
                return decision
    return plan(profile, request, snapshot, rules)


def fits_now(profile: Profile, request: Request, node: NodeView, amount: Resources) -> bool:
    """Whether `node` can still take `amount` for `request` on the log's own numbers
    (confirmed capacity, not what this process has pending): the re-check made just before a
    commit goes out."""
    if not amount.fits_in(node.confirmed_free):
        return False
    from gsch.policies.filters import resource_fit

    checks = [f for f in profile.node_filters if f is not resource_fit]
    return all(check(request, node) is None for check in checks)
