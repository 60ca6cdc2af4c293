"""Seeded placement instances: a fleet (a simulator topology) and requests in arrival order.

Families:
- `mixed`: twelve nodes of several shapes (4 to 64 cores, 2 to 8 GiB a core) in three
  clusters, where everything fits (the requests ask for 30-85 % of the fleet's cpu, each
  0.25 to 16 cores with 1 to 8 GiB a core): nodes used.
- `uniform`: the same on a fleet of one node shape.
- `overloaded`: a mixed fleet asked for 120-150 % of its cpu: requests placed.
- `latency`: near-edge, edge and cloud clusters with round trips between them, each request
  from a source node on the near edge, 50-80 % of the fleet asked for: total round trip.

The same seed gives the same instance on every machine (`random.Random`, no global state).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gsch.clusters.topology import SimCluster, SimNode, Topology
from gsch.model.resources import Resources

GI = 2**30
FAMILIES = ("mixed", "uniform", "overloaded", "latency")

# (cores, GiB): the shapes a mixed fleet draws from, and the one a uniform fleet has.
MIXED_SHAPES = ((4, 16), (8, 32), (16, 64), (32, 128), (64, 256), (8, 64), (16, 32))
UNIFORM_SHAPE = (16, 64)
# Request sizes in cores, with how often each is drawn; memory is 1, 2 or 4 GiB a core.
REQUEST_CORES = ((0.25, 3), (0.5, 3), (1, 3), (2, 2), (4, 2), (8, 1), (16, 0.5))
GIB_PER_CORE = (1, 2, 4, 8)
PODS = 110


@dataclass(frozen=True)
class Demand:
    """One request of an instance: what it asks for, and where its data comes from."""

    request_id: str
    amount: Resources
    source: tuple[str, str] | None = None  # (cluster, node)


@dataclass(frozen=True)
class Instance:
    family: str
    seed: int
    topology: Topology
    demands: tuple[Demand, ...]

    @property
    def nodes(self) -> tuple[tuple[str, SimNode], ...]:
        """Every node with its cluster, in one fixed order (the solvers' columns)."""
        return tuple((c.name, n) for c in self.topology.clusters for n in c.nodes)

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.topology.clusters)


def _node(name: str, cores: float, gib: int) -> SimNode:
    allocatable = Resources(cpu_m=int(cores * 1000), memory=gib * GI, pods=PODS)
    return SimNode(name, allocatable, {"kubernetes.io/hostname": name}, (), True)


def _fleet(
    chooser: random.Random, clusters: int, nodes: int, shapes: tuple[tuple[int, int], ...]
) -> list[SimCluster]:
    """`nodes` nodes of random `shapes`, dealt round-robin into `clusters` clusters."""
    members: list[list[SimNode]] = [[] for _ in range(clusters)]
    for index in range(nodes):
        cores, gib = chooser.choice(shapes)
        members[index % clusters].append(_node(f"c{index % clusters}-n{index}", cores, gib))
    return [
        SimCluster(f"c{i}", "edge", {"tier": "edge"}, True, tuple(own))
        for i, own in enumerate(members)
    ]


def _demands(chooser: random.Random, clusters: list[SimCluster], share: float) -> list[Resources]:
    """Requests until they ask for `share` of the fleet's cores, each one some node of the
    fleet could hold (a request no node can ever hold measures nothing)."""
    sizes, weights = zip(*REQUEST_CORES, strict=True)
    largest = [n.allocatable for c in clusters for n in c.nodes]
    made: list[Resources] = []
    asked = 0.0
    while asked < share * _cores(clusters):
        cores = chooser.choices(sizes, weights)[0]
        gib = cores * chooser.choice(GIB_PER_CORE)
        amount = Resources(cpu_m=int(cores * 1000), memory=int(gib * GI), pods=1)
        if any(amount.fits_in(room) for room in largest):
            made.append(amount)
            asked += cores
    return made


def _cores(clusters: list[SimCluster]) -> float:
    return sum(n.allocatable.cpu_m for c in clusters for n in c.nodes) / 1000


def packing_instance(family: str, seed: int) -> Instance:
    chooser = random.Random(f"{family}/{seed}")
    shapes = (UNIFORM_SHAPE,) if family == "uniform" else MIXED_SHAPES
    clusters = _fleet(chooser, 3, 12, shapes)
    low, high = (1.2, 1.5) if family == "overloaded" else (0.3, 0.85)
    amounts = _demands(chooser, clusters, chooser.uniform(low, high))
    demands = tuple(Demand(f"{family}-{seed}-{i}", a) for i, a in enumerate(amounts))
    return Instance(family, seed, Topology(tuple(clusters), {}, 0.5), demands)


def latency_instance(seed: int) -> Instance:
    """Three near-edge clusters (sources), two edge clusters and a cloud cluster; round trips
    grow by tier, with spread, so the nearest cluster that fits is not always the same."""
    chooser = random.Random(f"latency/{seed}")
    tiers = (("near-edge", 3, (8, 16)), ("edge", 2, (16, 32)), ("cloud", 1, (32, 64)))
    clusters = []
    for tier, count, (small, large) in tiers:
        for index in range(count):
            name = f"{tier}-{index}"
            nodes = tuple(
                _node(f"{name}-n{n}", chooser.choice((small, large)), 4 * large)
                for n in range(chooser.choice((2, 3)))
            )
            clusters.append(SimCluster(name, tier, {"tier": tier}, True, nodes))
    base = {"near-edge": 1.0, "edge": 5.0, "cloud": 20.0}
    latency: dict[str, dict[str, float]] = {}
    for a in clusters:
        for b in clusters:
            if a.name < b.name:
                ms = round((base[a.tier] + base[b.tier]) * chooser.uniform(0.5, 1.5), 2)
                latency.setdefault(a.name, {})[b.name] = ms
                latency.setdefault(b.name, {})[a.name] = ms
    sources = [(c.name, n.name) for c in clusters if c.tier == "near-edge" for n in c.nodes]
    amounts = _demands(chooser, clusters, chooser.uniform(0.5, 0.8))
    demands = tuple(
        Demand(f"latency-{seed}-{i}", amount, chooser.choice(sources))
        for i, amount in enumerate(amounts)
    )
    return Instance("latency", seed, Topology(tuple(clusters), latency, 0.5), demands)


def instances(family: str, count: int, first_seed: int = 0) -> list[Instance]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    seeds = range(first_seed, first_seed + count)
    if family == "latency":
        return [latency_instance(seed) for seed in seeds]
    return [packing_instance(family, seed) for seed in seeds]
