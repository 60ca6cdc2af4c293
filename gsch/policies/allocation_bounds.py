"""Cluster bounds of the allocation scores (see `allocation`): how high any node of a cluster
could score for a request, from the cluster's aggregates, so large levels are searched best
bound first instead of scanned.

Each score is a function of the node's used shares *after* placing the workload, i.e. of its
used shares now plus the workload's share of the node (demand / allocatable). The first part is
in the aggregates (the best node's, per score); the second depends on the request and on node
sizes, so it is bounded from the cluster's `Shape` (its smallest and largest node). Clusters of
one shape (one node pool) thus get the bound exactly; rankings are grouped by shape so the
order inside each group is the order of the bound, whatever the request.

On a node that fits the demand no share passes 1, which is what lets the shares split this way.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from gsch.clusters.aggregates import Shape
from gsch.clusters.snapshot import ClusterView
from gsch.model.request import Request
from gsch.policies.framework import BoundSide, ClusterBound

MAX_SCORE = 100.0
_THIRD = 1.0 / 3.0


def allocation_variant(_: Request) -> Hashable:
    """The rankings depend on no part of the request: one ranking serves them all."""
    return "allocation"


def _share(amount: int, size: int) -> float:
    return amount / size if size > 0 else 0.0


def _workload_share(request: Request, shape: Hashable, largest: bool) -> float:
    """100 x the mean share of a node the workload takes, over the node's resources, for the
    cluster's largest nodes (the least any node's share can be) or smallest (the most). (A node
    with nothing of a resource allocatable fits only a workload that asks for none of it, whose
    share is 0 anyway.)"""
    assert isinstance(shape, Shape)
    d = request.demand
    pick = 1 if largest else 0
    cpu = _share(d.cpu_m, shape.cpu[pick])
    memory = _share(d.memory, shape.memory[pick])
    gpu = _share(d.gpu, shape.gpu[pick])
    means = []
    if shape.without_gpus:
        means.append(MAX_SCORE * (cpu + memory) / 2)
    if shape.with_gpus:
        means.append(MAX_SCORE * (cpu + memory + gpu) * _THIRD)
    return min(means, default=0.0) if largest else max(means, default=0.0)


# --- least allocated (spreading): the emptiest node, less the workload's share ---------------


def least_allocated_rank(_: Hashable, cluster: ClusterView) -> tuple[Hashable, float]:
    best = cluster.aggregates
    return best.shape, MAX_SCORE * (1.0 - best.used_mean_low)


def least_allocated_limit(request: Request, shape: Hashable, value: float) -> float:
    return value - _workload_share(request, shape, largest=True)


def _free_ceiling(_: Hashable, value: float) -> float:
    return value  # the workload's share only lowers it


LEAST_ALLOCATED_BOUND = ClusterBound(
    allocation_variant,
    (BoundSide(least_allocated_rank, least_allocated_limit, _free_ceiling),),
)


# --- most allocated (bin packing): the fullest node, plus the workload's share --------------
# The fullest nodes are often the ones that cannot take the workload, so the bound is taken
# over the nodes with at least the demand's cpu and memory free (on the log's numbers, which
# pending commits only lower): requests of equal cpu and memory demand share one ranking (a
# fleet's workloads come in a few sizes; rankings are kept for the most recently used).


def most_allocated_variant(request: Request) -> Hashable:
    return request.demand.cpu_m, request.demand.memory


def most_allocated_rank(variant: Hashable, cluster: ClusterView) -> tuple[Hashable, float]:
    assert isinstance(variant, tuple)
    cpu, memory = variant
    fullest = max(
        (
            summary.used_mean
            for node in cluster.nodes.values()
            if (summary := node.summary) is not None
            and summary.confirmed_cpu_m >= cpu
            and summary.confirmed_memory >= memory
        ),
        default=None,
    )
    # No node with that much free: none can take such a request, any bound holds; last.
    return cluster.aggregates.shape, -MAX_SCORE if fullest is None else MAX_SCORE * fullest


def most_allocated_limit(request: Request, shape: Hashable, value: float) -> float:
    # GPUs, pods or pending commits may still keep that node from taking the workload: then
    # the bound is loose (still a bound) and the cluster is visited.
    return min(MAX_SCORE, value + _workload_share(request, shape, largest=False))


def _full_ceiling(_: Hashable, value: float) -> float:
    return MAX_SCORE


MOST_ALLOCATED_BOUND = ClusterBound(
    most_allocated_variant,
    (BoundSide(most_allocated_rank, most_allocated_limit, _full_ceiling),),
)


# --- balanced allocation: the node whose cpu and memory shares end up closest ---------------
# The score is 100 x (1 - the population standard deviation of the shares after placing).
# Of two shares it is |cpu - memory| / 2; with a third (GPUs) it is at least |cpu - memory| /
# sqrt(6) (the third share in the middle). With x = used cpu share - used memory share now and
# s = the workload's cpu share - its memory share of the node, the gap after placing is x + s:
# every node of a cluster has x within [balance_low, balance_high] and s within the shape's
# range, so |x + s| is at least the distance from 0 to [balance_low + s_low, balance_high +
# s_high]. That distance is the larger of two one-sided terms, one rising with balance_low and
# one falling with balance_high: two sides, two rankings, the bound the smaller of the two.


def _gap_range(request: Request, shape: Hashable) -> tuple[float, float, float]:
    """The range of the workload's cpu share less its memory share over the shape's nodes, and
    the factor from that gap to the standard deviation's lower bound."""
    assert isinstance(shape, Shape)
    d = request.demand
    cpu_low, cpu_high = _share(d.cpu_m, shape.cpu[1]), _share(d.cpu_m, shape.cpu[0])
    memory_low, memory_high = _share(d.memory, shape.memory[1]), _share(d.memory, shape.memory[0])
    factor = 1.0 / math.sqrt(6.0) if shape.with_gpus else 0.5
    return cpu_low - memory_high, cpu_high - memory_low, factor


def balance_low_rank(_: Hashable, cluster: ClusterView) -> tuple[Hashable, float]:
    best = cluster.aggregates
    return best.shape, -best.balance_low


def balance_low_limit(request: Request, shape: Hashable, value: float) -> float:
    low, _, factor = _gap_range(request, shape)
    return MAX_SCORE * (1.0 - factor * max(0.0, low - value))


def balance_high_rank(_: Hashable, cluster: ClusterView) -> tuple[Hashable, float]:
    best = cluster.aggregates
    return best.shape, best.balance_high


def balance_high_limit(request: Request, shape: Hashable, value: float) -> float:
    _, high, factor = _gap_range(request, shape)
    return MAX_SCORE * (1.0 - factor * max(0.0, -(value + high)))


BALANCED_ALLOCATION_BOUND = ClusterBound(
    allocation_variant,
    (
        BoundSide(balance_low_rank, balance_low_limit, _full_ceiling),
        BoundSide(balance_high_rank, balance_high_limit, _full_ceiling),
    ),
)
