"""How a level becomes placements: the part GEdge's policies differ in beyond their scores.

- `RankedByScore`: clusters compete on their best node's score; the best is placed. With a
  cluster bound (from PreScore), large levels are searched best bound first.
- `ListedOrder` (GSelectedCluster): the first cluster the request lists that can take it.
- `EveryCluster` (GSetClusters): a copy on every cluster of the level, or nothing.
- `RankedByClusterRank` (GLowLatencyPriority): clusters ranked by a per-plan measurement
  (PreScore's `ClusterRanking`), measured ones first.

All of them resolve and scan a level alike (`_resolve`) and explain it alike (`_finish`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, groupby

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView
from gsch.model.events import Placement
from gsch.model.request import Request, is_selector, selector_requirements
from gsch.policies.filters import every_node_passes, filters_for
from gsch.policies.framework import (
    MAX_LISTED,
    Candidate,
    ClusterRanking,
    LevelContext,
    LevelResult,
    micro,
    unresolvable,
)
from gsch.policies.search import ClusterOrder, LevelScan, cluster_order, matched, order_of
from gsch.policies.tracing import TOP, level_trace, node_plugin_scores

# Levels of up to this many clusters are scanned whole, so every cluster gets its own score
# or reasons in the explanation; larger ones (label selectors over a big fleet) are searched
# best bound first and the explanation counts the clusters it did not need to visit.
BOUND_FROM = MAX_LISTED

# Which of the ranked candidates a level places on.
_Placing = Callable[[Request, list[Candidate]], tuple[Placement, ...]]


class _Defaults:
    @property
    def keeps_listed_order(self) -> bool:
        return False

    @property
    def level_is_a_set(self) -> bool:
        return False


@dataclass(frozen=True)
class RankedByScore(_Defaults):
    """Highest best-node score first, equal scores by the request's hash of the cluster
    (`search.order_of`); the first is placed."""

    # From how many clusters a level is searched best bound first (when there is a bound).
    search_from: int = BOUND_FROM

    def place(self, context: LevelContext, listed: tuple[str, ...]) -> LevelResult:
        scan = _scan(context)
        search, snapshot = context.state.search, context.snapshot
        candidates: list[Candidate]
        if search is not None and matched(listed, snapshot) > self.search_from:
            found = scan.walk_rankings(listed, snapshot, search)
            shown, candidates = listed, [found] if found is not None else []
        else:
            shown, admitted = _resolve(context, scan, listed)
            if search is not None and len(admitted) > self.search_from:
                found = scan.walk_by_bound(admitted, snapshot.clusters, search)
                candidates = [found] if found is not None else []
            else:
                candidates = scan.visit_all(admitted)
        candidates.sort(key=cluster_order(context.request))
        return _finish(context, scan, shown, candidates, _scores(candidates), {}, _first)


@dataclass(frozen=True)
class ListedOrder(_Defaults):
    """The request's order is the preference: the first listed cluster that can take it.
    Levels of up to `search_from` clusters are scanned whole (every cluster explained); in
    larger ones nothing after the first cluster that can take it is visited."""

    search_from: int = BOUND_FROM

    @property
    def keeps_listed_order(self) -> bool:
        return True

    def place(self, context: LevelContext, listed: tuple[str, ...]) -> LevelResult:
        scan = _scan(context)
        snapshot = context.snapshot
        total = matched(listed, snapshot)
        if total > self.search_from and context.state.blocked is None:
            found = scan.walk_in_order(_in_listed_order(scan, listed, snapshot), snapshot.clusters)
            scan.note_passed_over(total, found, "the first listed cluster that fits wins")
            candidates = [found] if found is not None else []
            return _finish(context, scan, listed, candidates, _scores(candidates), {}, _first)
        shown, admitted = _resolve(context, scan, listed)
        candidates = scan.visit_all(admitted)
        return _finish(context, scan, shown, candidates, _scores(candidates), {}, _first)


@dataclass(frozen=True)
class EveryCluster(ListedOrder):
    """A copy on every cluster of the level, or none: one cluster that cannot take its copy
    fails the level (and the next level is tried). In a level of more than `search_from`
    clusters, the first cluster that cannot ends the level's search."""

    @property
    def level_is_a_set(self) -> bool:
        return True

    def place(self, context: LevelContext, listed: tuple[str, ...]) -> LevelResult:
        scan = _scan(context)
        snapshot = context.snapshot
        total = matched(listed, snapshot)
        if total > self.search_from and context.state.blocked is None:
            candidates = self._walk(scan, listed, snapshot, total)
            shown = listed
        else:
            shown, admitted = _resolve(context, scan, listed)
            candidates = scan.visit_all(admitted)

        def every(request: Request, ranked: list[Candidate]) -> tuple[Placement, ...]:
            if not ranked or scan.rejections:
                return ()
            return tuple(Placement(c.cluster, c.node.name, request.demand) for c in ranked)

        scores = _scores(candidates[:MAX_LISTED])  # decision events stay small
        if len(candidates) > MAX_LISTED:
            scan.notes["scores"] = f"shown for the first {MAX_LISTED} of {len(candidates)}"
        return _finish(context, scan, shown, candidates, scores, {}, every)

    @staticmethod
    def _walk(
        scan: LevelScan, listed: tuple[str, ...], snapshot: ClusterSnapshot, total: int
    ) -> list[Candidate]:
        """Every cluster of a large level in order, until one cannot take its copy (and a
        rejection has told whether the request should wait for capacity, as a full scan
        would: once one did, nothing further can change what the level decides)."""
        candidates = []
        seen: set[str] = set()
        failed_at = None
        for name in _in_listed_order(scan, listed, snapshot):
            if name in seen:
                continue
            seen.add(name)
            found = scan.take_up(name, snapshot.clusters.get(name), admitted=False)
            if found is None:
                failed_at = failed_at or name
            elif failed_at is None:
                candidates.append(found)
            if failed_at is not None and scan.unschedulable:
                break
        if failed_at is not None and total > scan.walked:
            scan.notes["not visited"] = (
                f"{total - scan.walked} cluster(s): {failed_at} cannot take its copy, which"
                " fails the set"
            )
        return candidates


@dataclass(frozen=True)
class RankedByClusterRank(_Defaults):
    """Clusters by PreScore's ranking (higher first), measured before unmeasured; equal ranks,
    and the unmeasured among themselves, by the request's hash of the cluster (as equal
    scores are). The first is placed on its best node by the profile's node score. In a level
    of more than `search_from` clusters, clusters are taken up in that order (the ranking's
    standing order, filtered to the level) and nothing after the first that fits is visited."""

    search_from: int = BOUND_FROM

    def place(self, context: LevelContext, listed: tuple[str, ...]) -> LevelResult:
        ranking = context.state.ranking
        if ranking is None:
            raise ValueError(f"{context.profile.name}: its PreScore ranks no clusters")
        scan = _scan(context)
        snapshot = context.snapshot
        total = matched(listed, snapshot)
        if total > self.search_from and context.state.blocked is None:
            found = scan.walk_in_order(
                _in_rank_order(scan, listed, snapshot, ranking), snapshot.clusters
            )
            scan.note_passed_over(total, found, f"ranked after it by {ranking.plugin}")
            shown, candidates = listed, [found] if found is not None else []
        else:
            shown, admitted = _resolve(context, scan, listed)
            candidates = scan.visit_all(admitted)
        ranks = {c.cluster: ranking.rank(c.cluster) for c in candidates}
        scan.notes.update({n: ranking.unmeasured for n, rank in ranks.items() if rank is None})
        request = context.request
        candidates.sort(key=lambda c: _ranked(request, ranks[c.cluster], c.cluster))
        scores = {name: round(rank, 3) for name, rank in ranks.items() if rank is not None}
        by_plugin = {
            ranking.plugin: {
                c.cluster: round(ranking.shown(rank), 3)
                for c in candidates[:TOP]
                if (rank := ranks[c.cluster]) is not None
            }
        }
        return _finish(context, scan, shown, candidates, scores, by_plugin, _first)


def _in_listed_order(
    scan: LevelScan, listed: tuple[str, ...], snapshot: ClusterSnapshot
) -> Iterator[str]:
    """The clusters of a level in the request's order, selectors yielding what they match in
    name order, lazily (a walk that stops early costs what it took)."""
    for entry in listed:
        if is_selector(entry):
            selected = snapshot.select(selector_requirements(entry))
            scan.note_match(entry, selected)
            yield from selected
        else:
            yield entry


def _in_rank_order(
    scan: LevelScan, listed: tuple[str, ...], snapshot: ClusterSnapshot, ranking: ClusterRanking
) -> Iterator[str]:
    """The clusters of a level in the order a scan ranks them (`_ranked`), lazily: measured
    ones from the ranking's standing orders of the level's selections merged with its names,
    each run of equal ranks put in the request's hash order as the walk reaches it; then the
    unmeasured, in that hash order (gathered only if the walk gets that far)."""
    request = scan.request
    selectors = [entry for entry in listed if is_selector(entry)]
    names = sorted({entry for entry in listed if not is_selector(entry)})
    selections = []
    orders = []
    for entry in selectors:
        requirements = selector_requirements(entry)
        selections.append(snapshot.select(requirements))
        scan.note_match(entry, selections[-1])
        orders.append(ranking.order(requirements))
    ranks = {name: ranking.rank(name) for name in names}
    orders.append(sorted((-rank, name) for name, rank in ranks.items() if rank is not None))
    for _, tied in groupby(heapq.merge(*orders), key=lambda entry: micro(entry[0])):
        yield from sorted((name for _, name in tied), key=lambda n: order_of(request, 0.0, n))
    unmeasured = {n for n in chain(names, *selections) if ranking.rank(n) is None}
    yield from sorted(unmeasured, key=lambda n: order_of(request, 0.0, n))


def _scan(context: LevelContext) -> LevelScan:
    profile, request = context.profile, context.request
    node_filters = filters_for(request, profile.node_filters)
    return LevelScan(
        request,
        context.rules,
        profile.cluster_filters,
        node_filters,
        context.state.scorer,
        context.state.top_nodes,
        every_node_passes(request, node_filters),
    )


def _resolve(
    context: LevelContext, scan: LevelScan, listed: tuple[str, ...]
) -> tuple[tuple[str, ...], list[ClusterView]]:
    """The level as the explanation shows it, and its clusters that pass the cluster
    filters. A level resolved to a large part of the fleet is shown as listed (the notes say
    what its selectors matched), so decision events stay small."""
    level = scan.expand(listed, context.snapshot)
    shown = level if len(level) <= MAX_LISTED else listed
    blocked = context.state.blocked
    if blocked is not None:
        status = unresolvable(blocked, "PreScore")
        for name in level:
            scan.reject_status(name, status)
        return shown, []
    clusters = context.snapshot.clusters
    return shown, [c for name in level if (c := scan.admit(name, clusters.get(name)))]


def _scores(candidates: list[Candidate]) -> dict[str, float]:
    return {c.cluster: round(c.score, 3) for c in candidates}


def _first(request: Request, ranked: list[Candidate]) -> tuple[Placement, ...]:
    if not ranked:
        return ()
    return (Placement(ranked[0].cluster, ranked[0].node.name, request.demand),)


def _finish(
    context: LevelContext,
    scan: LevelScan,
    shown: tuple[str, ...],
    ranked: list[Candidate],
    scores: dict[str, float],
    by_plugin: dict[str, dict[str, float]],
    placing: _Placing,
) -> LevelResult:
    """Place on the ranked candidates and explain the level."""
    request, state = context.request, context.state
    if state.notes:
        scan.notes.update({f"note {i + 1}": note for i, note in enumerate(state.notes)})
    by_plugin.update(node_plugin_scores(request, ranked, state.plugins))
    placements = placing(request, ranked)
    where = ", ".join(f"{p.cluster}/{p.node}" for p in placements) or None
    trace = level_trace(context.index, shown, scan, scores, by_plugin, where)
    return LevelResult(placements, trace, scan.unschedulable)


def _ranked(request: Request, rank: float | None, cluster: str) -> tuple[int, ClusterOrder]:
    """Measured clusters first, best rank first; the rest after them; ties fairly."""
    return (0, order_of(request, rank, cluster)) if rank is not None else (
        1, order_of(request, 0.0, cluster)
    )  # fmt: skip
