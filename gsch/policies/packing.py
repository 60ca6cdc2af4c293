"""GBinPackPriority: pack workloads onto as few nodes as possible, on fleets of mixed shapes.

kube-scheduler's MostAllocated (mode `mostallocated`, kept by that name) scores each node's
own fullness: an empty 4-core node that a 2-core pod half fills beats a 64-core node already
15 % full, so small nodes fill first and a mixed fleet uses far more nodes than it needs
(`gsch bench --quality`: 2.7x the optimum on seeded mixed fleets). The default mode packs:

- A node already holding a workload gsch placed (a reservation, or one being committed) beats
  every empty one; among those, the tightest fit wins (best fit: the fewest further copies of
  this request would still fit; equal there, the node that strands the least).
- Otherwise the request opens the node that can take the most copies of it (the biggest,
  measured in the request's own shape), so later requests have room there; equal there, the
  fullest once it is on (others' pods already keep that node on; a snug fit strands the
  least). A GPU node is opened for a request without GPUs only when nothing else can take
  it: its GPUs stay free for GPU work.

"In use" counts gsch's own reservations, not foreign pods: every real node runs some
(DaemonSets), which says nothing about whether gsch's workloads are packed.

Measured (README "Placement quality"): 1.03x the optimum's nodes on mixed fleets, as good as
MostAllocated on fleets of one shape, and more requests placed where not everything fits.
The price: a request that only the fleet's largest empty node could hold finds it opened by
smaller ones more often (the queue then waits for capacity).
"""

from __future__ import annotations

import math

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.request import Request
from gsch.model.resources import Resources
from gsch.policies.allocation import MOST_ALLOCATED, fullness_after
from gsch.policies.framework import (
    BoundSide,
    ClusterBound,
    PlanState,
    Scale,
    ScorePlugin,
    ceiling_is_value,
    combined_bound,
    exact,
)
from gsch.policies.rules import PlannerRules

MOST_ALLOCATED_MODE = "mostallocated"

# One float per node, compared in whole points (see `framework.combined`): a hundredth of a
# copy of the request is a point. Nodes in use sit IN_USE above every empty node, empty GPU
# nodes (for a request without GPUs) GPU_HELD_BACK below every other empty node: far apart
# beyond any count of copies a node can hold (pods cap it at hundreds, memory at millions).
POINTS_PER_COPY = 100.0
IN_USE = 1e12
GPU_HELD_BACK = 1e11
# Tie-breaks within a whole copy, never more: stranding (in copies) on a node in use, and
# fullness (0..1) on one that is not.
MAX_STRANDED = 99.0
FULLNESS_POINTS = 99.0
_NOTHING = Resources()


def _copies(demand: Resources, free: Resources) -> tuple[float, float]:
    """How many more copies of `demand` `free` holds: by its scarcest resource (the number
    that fit) and by its most plentiful one (the rest is stranded). Counted over the
    resources the request asks for (cpu, memory, GPUs; pods when it asks for none)."""
    shares = [
        have / want
        for have, want in ((free.cpu_m, demand.cpu_m), (free.memory, demand.memory),
                           (free.gpu, demand.gpu))
        if want > 0
    ]  # fmt: skip
    if not shares:
        shares = [free.pods / max(1, demand.pods)]
    return min(shares), max(shares)


def in_use(node: NodeView) -> bool:
    """Whether gsch holds (or is committing) a workload on the node."""
    return bool(node.reservations) or node.pending != _NOTHING


def fewest_nodes_score(request: Request, node: NodeView) -> float:
    return _fewest_nodes(request.demand, node.allocatable, node.free, in_use(node))


def _fewest_nodes(demand: Resources, allocatable: Resources, free: Resources, used: bool) -> float:
    if used:
        left, plenty = _copies(demand, free - demand)
        return IN_USE - (POINTS_PER_COPY * left + min(MAX_STRANDED, plenty - left))
    # Not in use: the biggest node first, counted in whole copies of the request its
    # allocatable holds; within a count, the fullest once the workload is on it (others'
    # pods already keep it on, and a snug fit strands the least).
    size, _ = _copies(demand, allocatable)
    fullness = fullness_after(demand, allocatable, allocatable - free)
    score = POINTS_PER_COPY * math.floor(size) + FULLNESS_POINTS * fullness
    if allocatable.gpu > 0 and demand.gpu == 0:
        score -= GPU_HELD_BACK
    return score


# Below every fewest-nodes score: a cluster where no ready node has room for the demand.
NO_ROOM = -10 * IN_USE


def fewest_nodes_variant(request: Request) -> Resources:
    """The ranking depends on the whole demand (copies are counted in its shape): requests
    of one size share one ranking (a fleet's workloads come in a few sizes; rankings are
    kept for the most recently used)."""
    return request.demand


def fewest_nodes_rank(demand: Resources, cluster: ClusterView) -> tuple[None, float]:
    """The best fewest-nodes score any ready node of `cluster` with room for `demand` (on the
    planning numbers, as the resource filter sees them) has: exactly what a scan of its nodes
    finds unless another filter (taints, selectors, a pinned node) rejects that node, in
    which case the real best is lower and this is still a bound."""
    best = NO_ROOM
    for node in cluster.nodes.values():
        if not (node.declared and node.ready):
            continue
        free = node.free
        if demand.fits_in(free):
            best = max(best, _fewest_nodes(demand, node.allocatable, free, in_use(node)))
    return None, best


FEWEST_NODES = ScorePlugin(
    "fewest nodes (in use first, best fit; else the biggest)",
    fewest_nodes_score,
    # Scored alone (compared raw); weighed with another plugin, nodes in use map near 100.
    scale=Scale(-GPU_HELD_BACK, IN_USE),
    # The ranking's value is the bound itself (the demand is fixed by the variant).
    bound=ClusterBound(
        fewest_nodes_variant, (BoundSide(fewest_nodes_rank, exact, ceiling_is_value),)
    ),
)

# Each mode's scorer and the cluster bound its large levels are searched by.
_SEARCHES = {
    plugin: combined_bound(f"GBinPackPriority {plugin.name}", (plugin,))
    for plugin in (FEWEST_NODES, MOST_ALLOCATED)
}


def prepare_bin_pack(request: Request, snapshot: ClusterSnapshot, rules: PlannerRules) -> PlanState:
    """PreScore: the mode chooses the scorer (kube's MostAllocated by its name), and with it
    the cluster bound of its search."""
    plugin = MOST_ALLOCATED if request.mode == MOST_ALLOCATED_MODE else FEWEST_NODES
    bound_for = _SEARCHES[plugin]
    search = bound_for(request) if bound_for is not None else None
    return PlanState((plugin,), plugin.score, search)
