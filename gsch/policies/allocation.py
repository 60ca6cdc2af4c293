"""Packing and spreading scorers, as kube-scheduler's NodeResourcesFit strategies and
NodeResourcesBalancedAllocation compute them, on the node as it would be *after* placing the
workload: MostAllocated (`GBinPackPriority` mode `mostallocated`; its default mode packs to
the fewest nodes, `packing.py`), `GLeastRequestedPriority` (LeastAllocated) and
`GBalancedPriority` (BalancedAllocation). Scores run 0..100; GPUs count only when the node has
some, so GPU-less fleets are scored on cpu and memory alone.
"""

from __future__ import annotations

from collections.abc import Hashable
from statistics import pstdev

from gsch.clusters.snapshot import ClusterView, NodeView
from gsch.model.request import Request
from gsch.policies.framework import ClusterBound, ScorePlugin

MAX_SCORE = 100.0


def _fractions_after(request: Request, node: NodeView) -> list[float]:
    """Share of each resource that would be taken once the workload is on the node."""
    a, held, d = node.allocatable, node.held, request.demand
    pairs = [(held.cpu_m + d.cpu_m, a.cpu_m), (held.memory + d.memory, a.memory)]
    if a.gpu > 0:
        pairs.append((held.gpu + d.gpu, a.gpu))
    return [min(1.0, used / total) if total > 0 else 1.0 for used, total in pairs]


def most_allocated_score(request: Request, node: NodeView) -> float:
    """Bin packing: the fuller the node ends up, the better."""
    fractions = _fractions_after(request, node)
    return MAX_SCORE * sum(fractions) / len(fractions)


def least_allocated_score(request: Request, node: NodeView) -> float:
    """Spreading: the emptier the node stays, the better."""
    return MAX_SCORE - most_allocated_score(request, node)


def least_allocated_variant(_: Request) -> Hashable:
    """The bound below depends on no part of the request: one ranking serves them all."""
    return "least allocated"


def least_allocated_bound(_: Hashable, cluster: ClusterView) -> float:
    """No node of `cluster` can score more than this, from its aggregates. A node's score is
    100 x the mean of what stays free of each resource once the workload is on it, and each
    share is at most the cluster's best free share of that resource. A GPU node adds a third
    share (at most 1, and 0 on every GPU node when none has a GPU free), which can only raise
    the mean to (cpu + memory + 1) / 3."""
    cpu, memory = cluster.max_free_cpu_share, cluster.max_free_memory_share
    if cluster.max_free_gpus > 0:
        return MAX_SCORE * (cpu + memory + 1.0) / 3
    return MAX_SCORE * (cpu + memory) / 2


def balanced_allocation_score(request: Request, node: NodeView) -> float:
    """Spreading that keeps a node's resources in step: 100 when every resource would be used
    in the same proportion, less as their shares drift apart."""
    return MAX_SCORE * (1.0 - pstdev(_fractions_after(request, node)))


# Each scores 0..100 already: the framework's default scale.
MOST_ALLOCATED = ScorePlugin("most allocated", most_allocated_score)
LEAST_ALLOCATED = ScorePlugin(
    "least allocated",
    least_allocated_score,
    bound=ClusterBound(least_allocated_variant, least_allocated_bound),
)
BALANCED_ALLOCATION = ScorePlugin("balanced allocation", balanced_allocation_score)
