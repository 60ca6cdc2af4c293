"""What a planner may know about a cluster without visiting its nodes: per node, the few numbers
every score and the capacity filter of the planner are functions of (`NodeSummary`), and per
cluster their best (and least) values over its ready nodes (`Aggregates`) and the range of its
node sizes (`Shape`).

Summaries are of the planning view (what is held on a node, this process's pending commits
included), so a bound computed from them holds for the scores a plan computes. A node's summary
changes only with that node's events (or its pending amounts), so folding an event costs one
summary and one pass over the summaries of its cluster.
"""

from __future__ import annotations

from itertools import compress
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
    # Free on the log's numbers alone (this process's pending commits not subtracted).
    confirmed_cpu_m: int
    confirmed_memory: int
    confirmed_gpu: int
    confirmed_pods: int
    # Free for planning (pending commits subtracted), as the capacity filter compares it.
    room_cpu_m: int
    room_memory: int
    room_gpu: int
    room_pods: int


def summarise(allocatable: Resources, held: Resources, confirmed_free: Resources) -> NodeSummary:
    a, h, c = allocatable, held, confirmed_free
    free_cpu = 100.0 - 100.0 * h.cpu_m / a.cpu_m if a.cpu_m > 0 else 0.0
    free_memory = 100.0 - 100.0 * h.memory / a.memory if a.memory > 0 else 0.0
    used_cpu = min(1.0, h.cpu_m / a.cpu_m) if a.cpu_m > 0 else 1.0
    used_memory = min(1.0, h.memory / a.memory) if a.memory > 0 else 1.0
    if a.gpu > 0:
        used_mean = (used_cpu + used_memory + min(1.0, h.gpu / a.gpu)) / 3
    else:
        used_mean = (used_cpu + used_memory) / 2
    return NodeSummary(
        free_cpu,
        free_memory,
        max(0, a.gpu - h.gpu),
        free_cpu + free_memory,
        used_mean,
        used_cpu - used_memory,
        c.cpu_m,
        c.memory,
        c.gpu,
        c.pods,
        a.cpu_m - h.cpu_m,
        a.memory - h.memory,
        a.gpu - h.gpu,
        a.pods - h.pods,
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
    most free of each resource on one node (log's numbers), and the cluster's shape; and
    what tells that a filter passes every node of the cluster without looking at them."""

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
    # The nodes whose free_sum is the highest in whole points (as the planner compares
    # scores), by name: the only ones that can be its best by free capacity while any of
    # them passes the filters (one: the best for certain).
    free_sum_top: tuple[str, ...] = ()
    # The least free for planning of each resource on one node: a demand within it fits on
    # every ready node.
    least_room: Resources = Resources()
    ready_nodes: int = 0  # how many nodes these are of (those declared and ready)
    tainted: bool = False  # whether any of them has a taint


NO_NODES = Aggregates(0.0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, Resources(), EMPTY_SHAPE)


def aggregate(
    summaries: list[NodeSummary], names: list[str], shape: Shape, tainted: bool
) -> Aggregates:
    """Aggregates of the ready nodes whose summaries (and names) are given, by name, of that
    shape, `tainted` when some of them has a taint.

    Computed again whenever a node of the cluster changed and a plan reads it (every worker
    folds every reservation of the fleet): one pass per column in C, and one over free_sum
    for the nodes at the top in whole points."""
    if not summaries:
        return NO_NODES
    (free_cpu, free_memory, free_gpus, sums, used_means, balances, cpus, memories, gpus, pods,
     room_cpus, room_memories, room_gpus, room_pods) = zip(*summaries, strict=True)  # fmt: skip
    top = max(sums)
    points = round(top)
    # Only a value within half a point of the top's points can round to them; the one
    # exactly half a point below does only when rounding half to even says so.
    near = points - 0.5
    above = near.__le__ if round(near) == points else near.__lt__
    return Aggregates(
        max(free_cpu),
        max(free_memory),
        max(free_gpus),
        top,
        max(used_means),
        min(used_means),
        min(balances),
        max(balances),
        Resources(max(cpus), max(memories), max(gpus), max(pods)),
        shape,
        tuple(compress(names, map(above, sums))),
        Resources(min(room_cpus), min(room_memories), min(room_gpus), min(room_pods)),
        len(summaries),
        tainted,
    )


def shape_of(allocatables: list[Resources]) -> Shape:
    """The shape of nodes of these sizes."""
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
