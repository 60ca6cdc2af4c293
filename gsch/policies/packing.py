"""GBinPackPriority: pack workloads onto as few nodes as possible, on fleets of mixed shapes.

kube-scheduler's MostAllocated (mode `mostallocated`, kept by that name) scores each node's
own fullness: an empty 4-core node that a 2-core pod half fills beats a 64-core node already
15 % full, so small nodes fill first and a mixed fleet uses far more nodes than it needs
(`gsch bench --quality`: 2.9x the optimum on seeded mixed fleets). The default mode packs:

- A node already holding a workload gsch placed (a reservation, or one being committed) beats
  every empty one; among those, the tightest fit wins (best fit: the fewest further copies of
  this request would still fit; equal there, the node that strands the least).
- Otherwise the request opens the node that can take the most copies of it (the biggest,
  measured in the request's own shape), so later requests have room there; equal there, the
  fullest once it is on (others' pods already keep that node on; a snug fit strands the
  least). A GPU node is opened for a request without GPUs only when nothing else can take
  it: its GPUs stay free for GPU work.
- Except the fleet's largest empty node (of those with GPUs for a GPU request, else of those
  without; largest by free GPUs, cpu, memory), when it is larger than the next: a request
  that the next largest holds at least KEEP_BACK_COPIES times over opens it only when no
  other node (but a GPU node) can take it. Opening the biggest node for small requests is
  what packs them; the largest node is what a late large request needs (16 cores and 128
  GiB fit two shapes of the mixed fleets), and small ones have other big nodes to open.

"In use" counts gsch's own reservations, not foreign pods: every real node runs some
(DaemonSets), which says nothing about whether gsch's workloads are packed.

The largest empty node is the fleet's, not the level's: it is the fleet's room for large
requests, whatever levels they name; keeping it back is a preference, never a filter (a
request that only it can take is placed there), so one outside the request's level costs
nothing; and the fleet's two largest are one index folded from events
(`clusters/empty_nodes.py`), where a level's would need one per selection. A plan reads it
once, so the walk's bound (the best score of a cluster's nodes without the rule, per demand
size) is still an upper bound: it is exact except on the kept node's cluster, which a walk
may visit once more.

Measured (README "Placement quality", seeds 0-29): 1.13x the optimum's nodes on mixed
fleets, as good as MostAllocated on fleets of one shape, as many requests placed as
MostAllocated on the mixed fleets (1,927 of 1,928) and more where not everything fits. The
threshold was chosen on 200 further seeds (30-229), where 5 beats the 3 or 4 that suffice on
seeds 0-29 (fewer nodes, more placed when overloaded); there the rule's gain is small: 2
more of 12,802 requests placed, still 22 fewer than MostAllocated (a late large request
finds every node that could hold it opened by small ones; the queue then waits for
capacity).
"""

from __future__ import annotations

import dataclasses
import math

from gsch.clusters.empty_nodes import holds_workloads, largeness
from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.request import Request
from gsch.model.resources import Resources
from gsch.policies.allocation import MOST_ALLOCATED, fullness_after
from gsch.policies.framework import (
    BoundSearch,
    BoundSide,
    ClusterBound,
    NodeScorer,
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
# nodes (for a request without GPUs) GPU_HELD_BACK below every other empty node, the kept
# largest empty node KEPT_BACK below the other empty nodes but above GPU nodes held back: far
# apart beyond any count of copies a node can hold (pods cap it at hundreds, memory at
# millions).
POINTS_PER_COPY = 100.0
IN_USE = 1e12
GPU_HELD_BACK = 1e11
KEPT_BACK = 1e10
# A request that the second-largest empty node holds this many times over leaves the largest
# for one that needs it. Measured (`gsch bench --quality`, and seeds 30-229 apart): 3 or 4
# already place as many as MostAllocated on seeds 0-29, 5 does too with fewer nodes and
# more placed where not everything fits, on both sets of seeds; from 16 on the rule stops
# placing more beyond seeds 0-29; 1 (keep it back from everything) places the most on mixed
# fleets but with 35 % more nodes, and fewer where not everything fits.
KEEP_BACK_COPIES = 5
# Tie-breaks within a whole copy, never more: stranding (in copies) on a node in use, and
# fullness (0..1) on one that is not.
MAX_STRANDED = 99.0
FULLNESS_POINTS = 99.0


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


def fewest_nodes_score(request: Request, node: NodeView) -> float:
    return _fewest_nodes(request.demand, node.allocatable, node.free, holds_workloads(node))


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
            best = max(best, _fewest_nodes(demand, node.allocatable, free, holds_workloads(node)))
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


def _search(plugin: ScorePlugin, request: Request) -> BoundSearch | None:
    bound_for = _SEARCHES[plugin]
    return bound_for(request) if bound_for is not None else None


def kept_back(request: Request, snapshot: ClusterSnapshot) -> tuple[NodeView, NodeView] | None:
    """The fleet's largest empty node when this request leaves it for one that needs it, with
    the next largest (smaller, and holding the request KEEP_BACK_COPIES times over or more)."""
    demand = request.demand
    largest = snapshot.largest_empty(with_gpus=demand.gpu > 0, count=2)
    if len(largest) < 2:
        return None  # the only empty node: nothing else to open
    first, second = largest
    if largeness(first) == largeness(second):
        # Keeping back one of equal nodes would keep nothing (the other is as large) and
        # send every request to the other, where equal nodes should share the load.
        return None
    if _copies(demand, second.free)[0] < KEEP_BACK_COPIES:
        return None
    return first, second


def _keeping_back(node: NodeView) -> NodeScorer:
    def score(request: Request, candidate: NodeView) -> float:
        found = fewest_nodes_score(request, candidate)
        return found - KEPT_BACK if candidate is node else found

    return score


def _size(free: Resources) -> str:
    gpus = f", {free.gpu} GPUs" if free.gpu else ""
    return f"{free.cpu_m / 1000:g} cores, {free.memory / 2**30:g} GiB{gpus} free"


def _fewest_nodes_state(request: Request, snapshot: ClusterSnapshot) -> PlanState:
    """The default mode's PreScore: the nodes held back for this request, said in the
    explanation, and the scorer that holds them back."""
    search = _search(FEWEST_NODES, request)
    notes = []
    if request.demand.gpu == 0 and (gpu_nodes := snapshot.largest_empty(True, 1)):
        notes.append(
            f"empty GPU nodes (the largest {gpu_nodes[0].cluster}/{gpu_nodes[0].name}) are"
            " opened only when no other node can take the request: their GPUs stay free for"
            " GPU work"
        )
    kept = kept_back(request, snapshot)
    if kept is None:
        return PlanState((FEWEST_NODES,), FEWEST_NODES.score, search, notes=tuple(notes))
    largest, next_largest = kept
    copies = math.floor(_copies(request.demand, next_largest.free)[0])
    notes.append(
        f"kept back {largest.cluster}/{largest.name}, the fleet's largest empty node"
        f" ({_size(largest.free)}), for requests that need it: the next largest,"
        f" {next_largest.cluster}/{next_largest.name}, holds this request {copies} times over"
        f" (at least {KEEP_BACK_COPIES}), so it is opened only when no other node"
        " can take it"
    )
    plugin = dataclasses.replace(FEWEST_NODES, score=_keeping_back(largest))
    return PlanState((plugin,), plugin.score, search, notes=tuple(notes))


def prepare_bin_pack(request: Request, snapshot: ClusterSnapshot, rules: PlannerRules) -> PlanState:
    """PreScore: the mode chooses the scorer (kube's MostAllocated by its name), and with it
    the cluster bound of its search."""
    if request.mode != MOST_ALLOCATED_MODE:
        return _fewest_nodes_state(request, snapshot)
    return PlanState((MOST_ALLOCATED,), MOST_ALLOCATED.score, _search(MOST_ALLOCATED, request))
