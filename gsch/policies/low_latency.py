"""GLowLatencyPriority: place the workload as close as possible to its data source.

Clusters of a level rank by the round-trip time measured from the source node to each cluster
(simulator topology, probes or agents report it as LatencyReported events; nothing is measured
while deciding). Clusters without a measurement rank after every measured one, and the
explanation says so. Inside the chosen cluster, the nearest node that fits wins (node-to-node
RTTs from the source node); where those are unknown, the node with most free capacity.

Mode `fromnode` names the source node; mode `frompod` names a pod, resolved to the node that
runs it through the pods the cluster reported (PodsReported). A pod the snapshot does not know
is not guessed at: nothing is placed, every cluster says why, and the request is retried when
cluster state may have caught up (as GEdge fails a frompod request whose pod is not found).

A report older than the configured maximum age ranks nothing. Age is judged against the
snapshot's clock (the newest event it folded), so a plan is a function of the snapshot alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from gsch.clusters.snapshot import ClusterSnapshot, NodeView
from gsch.model.events import LatencyReported
from gsch.model.request import Request
from gsch.policies.framework import ClusterRanking, PlanState, Scale, ScorePlugin, tiered
from gsch.policies.most_requested import free_capacity_score
from gsch.policies.rules import PlannerRules

# Node scores compare in whole points: a hundredth of a millisecond is one point.
POINTS_PER_MS = 100.0
# Only ever scored alone (so compared raw, see `framework.combined`); for a profile that
# would weigh it with others: 0 ms is the top, a second or more (and unmeasured) the bottom.
NEAREST_SCALE = Scale(-1000.0 * POINTS_PER_MS, 0.0)


def prepare_low_latency(
    request: Request, snapshot: ClusterSnapshot, rules: PlannerRules
) -> PlanState:
    """PreScore: the latencies measured from the request's source, read once per plan."""
    source = request.source
    source_cluster = source.cluster if source is not None else ""
    source_node, notes, blocked = _source_node(request, snapshot)
    where = f"{source_cluster}/{source_node}" if source_node else "the source"
    report = snapshot.latency.get((source_cluster, source_node)) if source_node else None
    if source_node and report is None:
        notes = (*notes, f"no latency reported from source node {where}")
    elif report is not None and (stale := _staleness(report, snapshot, rules)) is not None:
        notes, report = (*notes, stale), None
    # Read in place, not copied: a report may measure every cluster of a large fleet.
    no_report: dict[str, float] = {}
    to_clusters = report.to_clusters if report is not None else no_report
    to_nodes = report.to_nodes if report is not None else no_report

    def measured_node(req: Request, node: NodeView) -> float | None:
        rtt = to_nodes.get(node.name) if node.cluster == source_cluster else None
        return -rtt * POINTS_PER_MS if rtt is not None else None

    def cluster_rank(name: str) -> float | None:
        rtt = to_clusters.get(name)
        return -rtt if rtt is not None else None

    # Measured nodes first, nearest first; unmeasured ones after, most free capacity first.
    nearest = ScorePlugin(
        f"nearest node to {where} (-ms x {POINTS_PER_MS:g})",
        tiered(measured_node, free_capacity_score, "unmeasured nodes by free capacity (GEdge)"),
        scale=NEAREST_SCALE,
    )

    def nearest_first(requirements: tuple[tuple[str, str], ...]) -> Iterable[tuple[float, str]]:
        # The snapshot's standing order of the same report (ms, cluster): -rank, name.
        if report is None:
            return ()
        return snapshot.latency_order(report.cluster, report.node, requirements)

    ranking = ClusterRanking(
        rank=cluster_rank,
        plugin=f"latency from {where} (ms)",
        unmeasured=f"no latency measured from {where}: ranked after measured clusters",
        shown=_negated,
        order=nearest_first,
    )
    plugins = (nearest,)
    return PlanState(plugins, nearest.score, ranking=ranking, notes=notes, blocked=blocked)


def _source_node(
    request: Request, snapshot: ClusterSnapshot
) -> tuple[str | None, tuple[str, ...], str | None]:
    """The source node, notes about how it was found, and why nothing can be placed (if so)."""
    source = request.source
    if source is None:
        return None, ("the request names no source",), None
    if source.node is not None:
        return source.node, (), None
    if source.pod is None:
        return None, ("the request names no source node or pod",), None
    pod = request.pod_key(source.pod)
    node = snapshot.pod_node(source.cluster, pod)
    if node is None:
        reason = f"source pod {pod} is not among the pods cluster {source.cluster} reported"
        return None, (reason,), reason
    return node, (f"source pod {pod} runs on {source.cluster}/{node}",), None


def _staleness(
    report: LatencyReported, snapshot: ClusterSnapshot, rules: PlannerRules
) -> str | None:
    if rules.max_latency_age is None:
        return None
    age = snapshot.clock - report.at
    if age <= rules.max_latency_age:
        return None
    return (
        f"latency from {report.cluster}/{report.node} is {age:.0f} s older than the newest"
        f" cluster event (limit {rules.max_latency_age:g} s): treated as unmeasured"
    )


def _negated(rank: float) -> float:
    return -rank
