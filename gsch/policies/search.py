"""The work inside one level: filter clusters, filter and score their nodes, keep each
cluster's best node, and for large levels visit clusters best bound first.

Everything the explanation needs is collected on the way (rejections per cluster, the node
filters' reasons counted over the level), so nothing is visited twice to explain a decision.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gsch.clusters.snapshot import ClusterView, NodeView
from gsch.model.request import Request
from gsch.policies.rules import PlannerRules

# A node filter returns None when the node passes, else the reason it is out.
NodeFilter = Callable[[Request, NodeView], str | None]
ClusterFilter = Callable[[Request, ClusterView | None, PlannerRules], str | None]
NodeScorer = Callable[[Request, NodeView], float]


@dataclass(frozen=True)
class ScorePlugin:
    """A named node scorer; a profile's node score is the weighted sum of its plugins'."""

    name: str
    score: NodeScorer
    weight: float = 1.0

    @property
    def label(self) -> str:
        return self.name if self.weight == 1.0 else f"{self.name} x{self.weight:g}"


def combined(plugins: Sequence[ScorePlugin]) -> NodeScorer:
    """One scorer for the inner loop: the plugin itself when it is alone with weight 1."""
    if len(plugins) == 1 and plugins[0].weight == 1.0:
        return plugins[0].score
    parts = tuple((p.weight, p.score) for p in plugins)

    def total(request: Request, node: NodeView) -> float:
        return sum(weight * score(request, node) for weight, score in parts)

    return total


@dataclass(frozen=True)
class Candidate:
    cluster: str
    node: NodeView
    score: float


@dataclass
class LevelScan:
    request: Request
    rules: PlannerRules
    cluster_filters: Sequence[ClusterFilter]
    node_filters: Sequence[NodeFilter]
    scorer: NodeScorer
    rejections: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    filtered: Counter[str] = field(default_factory=Counter)  # node reasons over the level
    nodes: int = 0  # nodes the filters looked at
    visited: int = 0  # clusters whose nodes were looked at
    walked: int = 0  # clusters a best-first walk took up (visited or rejected by a filter)

    def admit(self, name: str, cluster: ClusterView | None) -> ClusterView | None:
        """The cluster when every cluster filter passes it; else None, with the reason kept."""
        for check in self.cluster_filters:
            reason = check(self.request, cluster, self.rules)
            if reason is not None:
                self.rejections[name] = [reason]
                return None
        if cluster is None:
            self.rejections[name] = ["unknown cluster"]
        return cluster

    def visit(self, cluster: ClusterView) -> Candidate | None:
        """The cluster's best node, or None with the reasons its nodes were rejected."""
        best, rejected = _best_node(self.request, cluster, self.node_filters, self.scorer)
        total = len(cluster.nodes)
        self.visited += 1
        self.nodes += total
        self.filtered.update(rejected)
        if best is None:
            reasons = [
                f"{count}/{total} nodes: {reason}" for reason, count in rejected.most_common()
            ]
            self.rejections[cluster.name] = reasons or ["cluster has no nodes"]
        return best

    def walk(
        self,
        ordered: Iterable[tuple[float, str]],
        clusters: Mapping[str, ClusterView],
        admitted: bool = False,
    ) -> Candidate | None:
        """Branch and bound: visit clusters in (-bound, name) order and stop when no cluster
        further on could beat the best found. That is exactly the cluster a full scan ranks
        first (highest score, then smallest name). `admitted`: the cluster filters already ran.
        """
        best: Candidate | None = None
        seen: set[str] = set()  # several selectors of one level may match one cluster
        for negative_bound, name in ordered:
            if best is not None and (-negative_bound, _neg(name)) < (
                best.score,
                _neg(best.cluster),
            ):
                break
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
                self.rejections[name] = [f"insufficient {', '.join(missing)} on every ready node"]
                continue
            found = self.visit(cluster)
            if found is not None and (
                best is None or (found.score, _neg(name)) > (best.score, _neg(best.cluster))
            ):
                best = found
        return best


def _best_node(
    request: Request, cluster: ClusterView, filters: Sequence[NodeFilter], scorer: NodeScorer
) -> tuple[Candidate | None, Counter[str]]:
    # The planner's inner loop: plain loops, and the tie hash only when points are equal.
    rejected: Counter[str] = Counter()
    best: Candidate | None = None
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
            best, best_points, best_tie = Candidate(cluster.name, node, score), points, -1
        elif points == best_points:
            if best_tie < 0:
                best_tie = _tie(request, best.node.name)
            tie = _tie(request, node.name)
            if tie < best_tie:
                best, best_tie = Candidate(cluster.name, node, score), tie
    return best, rejected


def _tie(request: Request, name: str) -> int:
    return zlib.crc32(f"{request.request_id}/{name}".encode())


def _neg(name: str) -> tuple[int, ...]:
    # Orders names in reverse, so "higher is better" comparisons prefer the smaller name.
    return tuple(-ord(char) for char in name)
