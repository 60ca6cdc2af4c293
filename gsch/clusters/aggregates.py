"""What a planner may know about a cluster without visiting its nodes: per node, the few numbers
every score of the planner is a function of (`NodeSummary`), and per cluster their best values
over its ready nodes (`Aggregates`) and the range of its node sizes (`Shape`).

Summaries are of the planning view (what is held on a node, this process's pending commits
included), so a bound computed from them holds for the scores a plan computes. A node's summary
changes only with that node's events (or its pending amounts), so folding an event costs one
summary and one pass over the summaries of its cluster.
"""

from __future__ import annotations

from typing import NamedTuple

from gsch.model.resources import Resources


class NodeSummary(NamedTuple):
    """One ready node, as the scores see it (shares 0..1 of what is allocatable)."""

    # Free percent as GEdge's free-capacity score computes it (100 - 100 x held/allocatable,
    # unclamped: a node holding more than it has goes below 0; 0 when nothing is allocatable),
    # and their sum, so that score's cluster bound is one node's, not a sum of best parts.
    free_cpu: float
    free_memory: float
    free_gpus: int  # never below 0
    free_sum: float
    # The kube-scheduler allocation scores' view: the used share of each resource, clamped
    # to 1 (and 1 when nothing is allocatable), averaged over the node's resources (cpu,
    # memory, and GPUs when it has any); and used cpu share minus used memory share.
    used_mean: float
    balance: float
    confirmed_free: Resources  # free on the log's numbers alone (pending not subtracted)


def summarise(allocatable: Resources, held: Resources, confirmed_free: Resources) -> NodeSummary:
    a, h = allocatable, held
    free_cpu = 100.0 - 100.0 * h.cpu_m / a.cpu_m if a.cpu_m > 0 else 0.0
    free_memory = 100.0 - 100.0 * h.memory / a.memory if a.memory > 0 else 0.0
    free_gpus = max(0, a.gpu - h.gpu)
    used_cpu = min(1.0, h.cpu_m / a.cpu_m) if a.cpu_m > 0 else 1.0
    used_memory = min(1.0, h.memory / a.memory) if a.memory > 0 else 1.0
    if a.gpu > 0:
        used_mean = (used_cpu + used_memory + min(1.0, h.gpu / a.gpu)) / 3
    else:
        used_mean = (used_cpu + used_memory) / 2
    return NodeSummary(
        free_cpu,
        free_memory,
        free_gpus,
        free_cpu + free_memory,
        used_mean,
        used_cpu - used_memory,
        confirmed_free,
    )


class Shape(NamedTuple):
    """The range of a cluster's ready node sizes, as bounds that depend on the workload's share
    of a node need it: the smallest and largest positive allocatable cpu, memory and GPUs, and
    whether its nodes have GPUs (all, some or none). Clusters of one node pool share one
    shape."""

    cpu: tuple[int, int]
    memory: tuple[int, int]
    gpu: tuple[int, int]
    with_gpus: bool
    without_gpus: bool


EMPTY_SHAPE = Shape((0, 0), (0, 0), (0, 0), False, False)


class Aggregates(NamedTuple):
    """The best value of each summary field over a cluster's ready nodes (for bounds), the
    most free of each resource on one node (log's numbers), and the cluster's shape."""

    free_cpu: float
    free_memory: float
    free_gpus: int
    free_sum: float
    used_mean_high: float
    used_mean_low: float
    balance_low: float
    balance_high: float
    max_free: Resources
    shape: Shape


NO_NODES = Aggregates(0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, Resources(), EMPTY_SHAPE)


def aggregate(summaries: list[NodeSummary], allocatables: list[Resources]) -> Aggregates:
    """Aggregates of the ready nodes whose summaries and allocatables are given (same order)."""
    if not summaries:
        return NO_NODES
    columns = list(zip(*summaries, strict=True))
    free = columns[6]
    return Aggregates(
        free_cpu=max(columns[0]),
        free_memory=max(columns[1]),
        free_gpus=max(columns[2]),
        free_sum=max(columns[3]),
        used_mean_high=max(columns[4]),
        used_mean_low=min(columns[4]),
        balance_low=min(columns[5]),
        balance_high=max(columns[5]),
        max_free=Resources(
            max(f.cpu_m for f in free),
            max(f.memory for f in free),
            max(f.gpu for f in free),
            max(f.pods for f in free),
        ),
        shape=_shape(allocatables),
    )


def _shape(allocatables: list[Resources]) -> Shape:
    cpus = [a.cpu_m for a in allocatables if a.cpu_m > 0]
    memories = [a.memory for a in allocatables if a.memory > 0]
    gpus = [a.gpu for a in allocatables if a.gpu > 0]
    return Shape(
        cpu=(min(cpus), max(cpus)) if cpus else (0, 0),
        memory=(min(memories), max(memories)) if memories else (0, 0),
        gpu=(min(gpus), max(gpus)) if gpus else (0, 0),
        with_gpus=bool(gpus),
        without_gpus=len(gpus) < len(allocatables),
    )
