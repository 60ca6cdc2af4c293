"""GLowLatencyPriority: place the workload as close as possible to its data source.

Clusters of a level rank by the round-trip time measured from the source node to each cluster
(simulator topology, probes or agents report it as LatencyReported events; nothing is measured
while deciding). Clusters without a measurement rank after every measured one, and the
explanation says so. Inside the chosen cluster, the nearest node that fits wins (node-to-node
RTTs from the source node); where those are unknown, the node with most free capacity.

Mode `frompod` needs the node that runs the source pod; that comes with pod inventory from
Kubernetes member clusters. Until the snapshot knows pods, such a request is placed on listed
order and its explanation says the source pod could not be found.
"""

from __future__ import annotations

from gsch.clusters.snapshot import ClusterSnapshot, NodeView
from gsch.model.request import Request
from gsch.policies.framework import Ranking
from gsch.policies.most_requested import free_capacity_score

# Node scores compare in whole points: a hundredth of a millisecond is one point.
POINTS_PER_MS = 100.0
UNMEASURED_NODE = -1e9  # below any measured node; free capacity breaks ties among these


def prepare_low_latency(request: Request, snapshot: ClusterSnapshot) -> Ranking:
    source = request.source
    notes: tuple[str, ...] = ()
    report = None
    if source is not None and source.node is not None:
        report = snapshot.latency.get((source.cluster, source.node))
        where = f"{source.cluster}/{source.node}"
        if report is None:
            notes = (f"no latency reported from source node {where}",)
    elif source is not None and source.pod is not None:
        where = f"pod {source.pod} in {source.cluster}"
        notes = (f"source {where} not found in cluster state (pods are not inventoried yet)",)
    else:
        where = "the source"
        notes = ("the request names no source node",)
    to_clusters = dict(report.to_clusters) if report is not None else {}
    to_nodes = dict(report.to_nodes) if report is not None else {}
    source_cluster = source.cluster if source is not None else None

    def nearest_node(req: Request, node: NodeView) -> float:
        rtt = to_nodes.get(node.name) if node.cluster == source_cluster else None
        if rtt is None:
            return UNMEASURED_NODE + free_capacity_score(req, node)
        return -rtt * POINTS_PER_MS

    def cluster_rank(name: str) -> float | None:
        rtt = to_clusters.get(name)
        return -rtt if rtt is not None else None

    return Ranking(
        node_scorer=nearest_node,
        cluster_rank=cluster_rank,
        unmeasured=f"no latency measured from {where}: ranked after measured clusters",
        notes=notes,
    )
