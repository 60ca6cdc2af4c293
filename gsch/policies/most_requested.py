"""GMostRequestedPriority as GEdge built it: the node with the most *free* capacity wins.

score = (100 - cpu%) + (100 - memory%) [+ 200 x free GPUs when the workload asks for GPUs],
usage counting what is already held on the node. Modes weight one resource instead.
"""

from __future__ import annotations

from gsch.clusters.snapshot import ClusterView, NodeView
from gsch.model.request import Request
from gsch.policies.framework import ClusterBound, Scale, ScorePlugin

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


def free_capacity_bound(variant: tuple[str, bool], cluster: ClusterView) -> float:
    """No node of `cluster` can score more than this (from the cluster's aggregates): the best
    cpu share and the best memory share need not sit on the same node, so it is an upper bound,
    and pending commits only lower real scores."""
    mode, wants_gpu = variant
    return _by_mode(
        mode,
        wants_gpu,
        100.0 * cluster.max_free_cpu_share,
        100.0 * cluster.max_free_memory_share,
        cluster.max_free_gpus,
    )


FREE_CAPACITY = ScorePlugin(
    "free capacity (GEdge)",
    free_capacity_score,
    # cpu% + memory% free: 0..200 (modes cpu and memory reach 100). Free GPUs, counted for
    # GPU requests, go beyond and are clamped when weighed against another plugin.
    scale=Scale(0.0, 200.0),
    bound=ClusterBound(free_capacity_variant, free_capacity_bound),
)
