"""Filters shared by every profile. Each returns None to pass, or the status that rejects:
UNSCHEDULABLE for capacity and readiness (cluster state may change it), UNRESOLVABLE for the
rest. Statuses whose text never varies are made once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gsch.clusters.aggregates import Aggregates
from gsch.clusters.snapshot import ClusterView, NodeView
from gsch.model.affinity import term_matches
from gsch.model.request import Request
from gsch.policies.framework import NodeFilter, Status, unresolvable, unschedulable
from gsch.policies.rules import PlannerRules

UNKNOWN_CLUSTER = unresolvable("unknown cluster", "ClusterKnown")
CLUSTER_NOT_READY = unschedulable("cluster not ready", "ClusterReady")
NODE_NOT_DECLARED = unresolvable("node not in inventory", "NodeReady")
NODE_NOT_READY = unschedulable("node not ready", "NodeReady")
AFFINITY_MISMATCH = unresolvable("required node affinity does not match", "NodeAffinity")


def cluster_known(
    request: Request, cluster: ClusterView | None, rules: PlannerRules
) -> Status | None:
    if cluster is None or not cluster.declared:
        return UNKNOWN_CLUSTER
    return None


def cluster_ready(
    request: Request, cluster: ClusterView | None, rules: PlannerRules
) -> Status | None:
    if cluster is not None and not cluster.ready:
        return CLUSTER_NOT_READY
    return None


def project_allowed(
    request: Request, cluster: ClusterView | None, rules: PlannerRules
) -> Status | None:
    """GEdge says a request is "restricted to clusters of the user's project" but never checks
    it; here the configured projects are enforced (none configured: nothing to enforce)."""
    project = request.project_name
    if project is None or not rules.projects or cluster is None:
        return None
    allowed = rules.projects.get(project)
    if allowed is None or not allowed.allows(cluster.name, cluster.labels):
        return unresolvable(f"not allowed for project {project}", "ProjectClusters")
    return None


def node_ready(request: Request, node: NodeView) -> Status | None:
    if not node.declared:
        return NODE_NOT_DECLARED
    if not node.ready:
        return NODE_NOT_READY
    return None


def node_pinned(request: Request, node: NodeView) -> Status | None:
    if request.select_node is not None and node.name != request.select_node:
        return unresolvable(f"not the selected node {request.select_node}", "NodeName")
    return None


def node_selector(request: Request, node: NodeView) -> Status | None:
    for key, value in request.node_selector.items():
        if node.labels.get(key) != value:
            return unresolvable(f"node selector {key}={value} does not match", "NodeSelector")
    return None


def node_affinity(request: Request, node: NodeView) -> Status | None:
    terms = request.node_affinity
    if not terms or any(term_matches(term, node.name, node.labels) for term in terms):
        return None
    return AFFINITY_MISMATCH


def untolerated_taint(request: Request, node: NodeView) -> Status | None:
    if not node.taints:
        return None  # the common case, and the workload's tolerations need not be read
    tolerations = _tolerations(request)
    for taint in node.taints:
        if taint.effect not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint.key, taint.value, taint.effect) for t in tolerations):
            return unresolvable(f"untolerated taint {taint.key}:{taint.effect}", "TaintToleration")
    return None


def resource_fit(request: Request, node: NodeView) -> Status | None:
    # Integer arithmetic on the hot path; the Resources objects only for the explanation.
    d, a, f, r, p = request.demand, node.allocatable, node.foreign, node.reserved, node.pending
    if (
        d.cpu_m <= a.cpu_m - f.cpu_m - r.cpu_m - p.cpu_m
        and d.memory <= a.memory - f.memory - r.memory - p.memory
        and d.gpu <= a.gpu - f.gpu - r.gpu - p.gpu
        and d.pods <= a.pods - f.pods - r.pods - p.pods
    ):
        return None
    return unschedulable("insufficient " + ", ".join(d.shortfalls(node.free)), "NodeResourcesFit")


def _tolerations(request: Request) -> list[dict[str, object]]:
    from gsch.model.workload import pod_spec

    for document in request.workload:
        spec = pod_spec(document)
        if spec is not None:
            found = spec.get("tolerations") or []
            return [t for t in found if isinstance(t, dict)]
    return []


def _tolerates(toleration: dict[str, object], key: str, value: str, effect: str) -> bool:
    if toleration.get("effect") not in (None, "", effect):
        return False
    if toleration.get("operator") == "Exists":
        return toleration.get("key") in (None, "", key)
    return toleration.get("key") == key and toleration.get("value", "") == value


# Filters that cannot reject a node for a request that asks nothing of them (no pinned node, no
# node selector, no affinity): a plan leaves them out of its inner loop.
_IDLE_FOR: dict[NodeFilter, Callable[[Request], bool]] = {
    node_pinned: lambda request: request.select_node is None,
    node_selector: lambda request: not request.node_selector,
    node_affinity: lambda request: not request.node_affinity,
}


def filters_for(request: Request, filters: Sequence[NodeFilter]) -> tuple[NodeFilter, ...]:
    """The node filters that can reject some node for `request`, in their order."""
    return tuple(f for f in filters if (idle := _IDLE_FOR.get(f)) is None or not idle(request))


# Filters whose verdict on every node of a cluster its aggregates can tell (True: the filter
# passes each of them), so a plan over a cluster where all of them pass skips the filters'
# loop; no entry: the nodes must be looked at.
_PASSES_EVERY_NODE: dict[NodeFilter, Callable[[Request, ClusterView, Aggregates], bool]] = {
    node_ready: lambda request, cluster, found: found.ready_nodes == len(cluster.nodes),
    untolerated_taint: lambda request, cluster, found: not found.tainted,
    resource_fit: lambda request, cluster, found: request.demand.fits_in(found.least_room),
}


def every_node_passes(
    request: Request, filters: Sequence[NodeFilter]
) -> Callable[[ClusterView], bool] | None:
    """For these filters and `request`: whether a cluster's aggregates show that every filter
    passes every node of it (False when they cannot tell); None when some filter can never
    tell from the aggregates."""
    checks = [_PASSES_EVERY_NODE.get(f) for f in filters]
    known = [check for check in checks if check is not None]
    # The aggregates are of the ready nodes: they tell about every node only once readiness
    # is checked too (it is, whenever it is a filter: it passes only if every node is ready).
    if len(known) < len(checks) or node_ready not in filters:
        return None

    def passes(cluster: ClusterView) -> bool:
        found = cluster.aggregates
        return all(check(request, cluster, found) for check in known)

    return passes


COMMON_CLUSTER_FILTERS = (cluster_known, cluster_ready, project_allowed)
COMMON_NODE_FILTERS = (
    node_ready,
    node_pinned,
    node_selector,
    node_affinity,
    untolerated_taint,
    resource_fit,
)
