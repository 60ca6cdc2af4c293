"""GMostRequestedPriority as GEdge built it: the node with the most *free* capacity wins.

score = (100 - cpu%) + (100 - memory%) [+ 200 x free GPUs when the workload asks for GPUs],
usage counting what is already held on the node. Modes weight one resource instead.
"""

from __future__ import annotations

from gsch.clusters.snapshot import ClusterView, NodeView
from gsch.model.request import Request
from gsch.policies.framework import (
    BoundSide,
    ClusterBound,
    Scale,
    ScorePlugin,
    ceiling_is_value,
    exact,
)

GPU_WEIGHT = 200.0


def _used_percent(used: int, allocatable: int) -> float:
    if allocatable <= 0:
        return 100.0
    return 100.0 * used / allocatable


def _by_mode(mode: str, wants_gpu: bool, cpu_free: float, memory_free: float, gpus: int) -> float:
    """GEdge's score from the free shares (in percent) and free GPUs, as the mode weighs them."""
    match mode:
        case "cpu":
            return cpu_free
        case "memory":
            return memory_free
        case "gpu":
            return GPU_WEIGHT * gpus
        case _:
            return cpu_free + memory_free + (GPU_WEIGHT * gpus if wants_gpu else 0.0)


def free_capacity_score(request: Request, node: NodeView) -> float:
    a, f, r, p = node.allocatable, node.foreign, node.reserved, node.pending
    cpu_free = 100.0 - _used_percent(f.cpu_m + r.cpu_m + p.cpu_m, a.cpu_m)
    memory_free = 100.0 - _used_percent(f.memory + r.memory + p.memory, a.memory)
    gpus = max(0, a.gpu - f.gpu - r.gpu - p.gpu)
    return _by_mode(request.mode, request.demand.gpu > 0, cpu_free, memory_free, gpus)


def free_capacity_variant(request: Request) -> tuple[str, bool]:
    """What of a request the bound depends on: requests alike here share one cluster ranking."""
    return request.mode, request.demand.gpu > 0


def free_capacity_rank(variant: tuple[str, bool], cluster: ClusterView) -> tuple[None, float]:
    """No node of `cluster` can score more than this, from its aggregates: for one resource
    (or cpu and memory together) the best node's own score; with GPUs counted, that plus the
    most free GPUs of any node (which need not be the same node). Pending commits are in."""
    mode, wants_gpu = variant
    best = cluster.aggregates
    match mode:
        case "cpu":
            return None, best.free_cpu
        case "memory":
            return None, best.free_memory
        case "gpu":
            return None, GPU_WEIGHT * best.free_gpus
        case _:
            return None, best.free_sum + (GPU_WEIGHT * best.free_gpus if wants_gpu else 0.0)


def free_capacity_top(request: Request, cluster: ClusterView) -> tuple[str, ...] | None:
    """The ready nodes with most free cpu and memory (in percent) in whole points: the score
    in mode default for a request without GPUs (None for other requests)."""
    if request.mode != "default" or request.demand.gpu > 0:
        return None
    return cluster.aggregates.free_sum_top


FREE_CAPACITY = ScorePlugin(
    "free capacity (GEdge)",
    free_capacity_score,
    # cpu% + memory% free: 0..200 (modes cpu and memory reach 100). Free GPUs, counted for
    # GPU requests, go beyond and are clamped when weighed against another plugin.
    scale=Scale(0.0, 200.0),
    # The score does not depend on the demand: the ranking's value is the bound itself.
    bound=ClusterBound(
        free_capacity_variant, (BoundSide(free_capacity_rank, exact, ceiling_is_value),)
    ),
    top_nodes=free_capacity_top,
)
