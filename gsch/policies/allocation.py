"""Packing and spreading scorers, as kube-scheduler's NodeResourcesFit strategies and
NodeResourcesBalancedAllocation compute them, on the node as it would be *after* placing the
workload: MostAllocated (`GBinPackPriority` mode `mostallocated`; its default mode packs to
the fewest nodes, `packing.py`), `GLeastRequestedPriority` (LeastAllocated) and
`GBalancedPriority` (BalancedAllocation). Scores run 0..100; GPUs count only when the node has
some, so GPU-less fleets are scored on cpu and memory alone.
"""

from __future__ import annotations

import math

from gsch.clusters.snapshot import NodeView
from gsch.model.request import Request
from gsch.model.resources import Resources
from gsch.policies.allocation_bounds import (
    BALANCED_ALLOCATION_BOUND,
    LEAST_ALLOCATED_BOUND,
    MOST_ALLOCATED_BOUND,
)
from gsch.policies.framework import ScorePlugin

MAX_SCORE = 100.0


def _fractions_after(request: Request, node: NodeView) -> list[float]:
    """Share of each resource that would be taken once the workload is on the node."""
    return fractions_after(request.demand, node.allocatable, node.held)


def fractions_after(d: Resources, a: Resources, held: Resources) -> list[float]:
    """Share of each resource of a node of size `a` holding `held` taken once `d` is on it."""
    pairs = [(held.cpu_m + d.cpu_m, a.cpu_m), (held.memory + d.memory, a.memory)]
    if a.gpu > 0:
        pairs.append((held.gpu + d.gpu, a.gpu))
    return [min(1.0, used / total) if total > 0 else 1.0 for used, total in pairs]


def most_allocated_score(request: Request, node: NodeView) -> float:
    """Bin packing: the fuller the node ends up, the better."""
    fractions = _fractions_after(request, node)
    return MAX_SCORE * sum(fractions) / len(fractions)


def fullness_after(d: Resources, a: Resources, held: Resources) -> float:
    """`most_allocated_score` from the numbers it depends on, as a share (0..1)."""
    fractions = fractions_after(d, a, held)
    return sum(fractions) / len(fractions)


def least_allocated_score(request: Request, node: NodeView) -> float:
    """Spreading: the emptier the node stays, the better."""
    return MAX_SCORE - most_allocated_score(request, node)


def balanced_allocation_score(request: Request, node: NodeView) -> float:
    """Spreading that keeps a node's resources in step: 100 when every resource would be used
    in the same proportion, less as their shares drift apart."""
    fractions = _fractions_after(request, node)
    mean = sum(fractions) / len(fractions)
    # The population standard deviation, inline: statistics.pstdev's exact arithmetic costs
    # tens of microseconds a node, the planner's largest cost on big levels.
    spread = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    return MAX_SCORE * (1.0 - spread)


# Each scores 0..100 already: the framework's default scale. Their cluster bounds are in
# `allocation_bounds`.
MOST_ALLOCATED = ScorePlugin("most allocated", most_allocated_score, bound=MOST_ALLOCATED_BOUND)
LEAST_ALLOCATED = ScorePlugin("least allocated", least_allocated_score, bound=LEAST_ALLOCATED_BOUND)
BALANCED_ALLOCATION = ScorePlugin(
    "balanced allocation", balanced_allocation_score, bound=BALANCED_ALLOCATION_BOUND
)
