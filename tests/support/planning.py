"""Builders shared by the planner's tests: clusters and nodes as inventory events folded into a
real ClusterSnapshot, requests, and a small independent model of the filtering rules (free
capacity, selectors, taints, readiness, GEdge's free-capacity score) over generated topologies,
for the properties that compare the planner with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import AnyEvent, CapacityReserved, ClusterDeclared, NodeDeclared, Taint
from gsch.model.request import Policy, Request
from gsch.model.resources import Resources
from gsch.policies.framework import Decision, Profile

GI = 2**30


def snapshot_of(events: list[AnyEvent]) -> ClusterSnapshot:
    snapshot = ClusterSnapshot()
    for seq, event in enumerate(events, start=1):
        snapshot.apply(event, seq)
    return snapshot


def cluster(name: str, ready: bool = True) -> ClusterDeclared:
    return ClusterDeclared(at=0, cluster=name, tier="edge", ready=ready)


def node(
    cluster_name: str,
    name: str,
    cpu: float = 4,
    memory_gi: float = 8,
    gpu: int = 0,
    used_cpu: float = 0,
    used_memory_gi: float = 0,
    pods: int = 110,
    **extra: Any,
) -> NodeDeclared:
    return NodeDeclared(
        at=0,
        cluster=cluster_name,
        node=name,
        allocatable=Resources(int(cpu * 1000), int(memory_gi * GI), gpu, pods),
        foreign=Resources(int(used_cpu * 1000), int(used_memory_gi * GI)),
        **extra,
    )


def request(
    levels: tuple[tuple[str, ...], ...],
    cpu: float = 0.5,
    memory_gi: float = 0.5,
    gpu: int = 0,
    policy: Policy = Policy.MOST_REQUESTED,
    mode: str = "default",
    **extra: Any,
) -> Request:
    return Request(
        request_id="req-1",
        policy=policy,
        mode=mode,
        levels=levels,
        demand=Resources(int(cpu * 1000), int(memory_gi * GI), gpu, 1),
        **extra,
    )


def searching_from(profile: Profile, clusters: int) -> Profile:
    """`profile` searching levels of more than `clusters` clusters (best bound first, in
    order, or in rank order, as its strategy does; 0: every level it can; huge: none, every
    level is scanned whole)."""
    strategy = profile.strategy
    assert hasattr(strategy, "search_from"), profile.name
    return dataclasses.replace(
        profile,
        strategy=dataclasses.replace(strategy, search_from=clusters),  # type: ignore[type-var]
    )


def chosen(decision: Decision) -> str | None:
    if not decision.placed:
        return None
    (placement,) = decision.placements
    return f"{placement.cluster}/{placement.node}"


# --- a model of the rules, over generated topologies ---------------------------------------

LABELS = [{"disk": "ssd"}, {"disk": "hdd"}, {"zone": "a"}, {"disk": "ssd", "zone": "a"}, {}]
# Requests mostly select nothing, so that most generated requests can be placed somewhere.
SELECTORS = [{}, {}, {}, {}, {"disk": "ssd"}, {"zone": "a"}, {"disk": "hdd", "zone": "a"}]
TAINTS = [
    Taint("gpu", "NoSchedule", "true"),
    Taint("maint", "NoExecute"),
    Taint("maint", "NoSchedule"),
    Taint("soft", "PreferNoSchedule"),
]
TOLERATIONS = {
    "gpu": {"key": "gpu", "operator": "Exists"},
    "maint-exec": {"key": "maint", "operator": "Equal", "value": "", "effect": "NoExecute"},
    "all": {"operator": "Exists"},
}


@dataclass
class ModelNode:
    cluster: str
    name: str
    allocatable: Resources
    foreign: Resources
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    declared: bool = True
    reserved: Resources = Resources()


@dataclass
class Topology:
    events: list[AnyEvent] = field(default_factory=list)
    clusters: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # declared, ready
    nodes: dict[str, list[ModelNode]] = field(default_factory=dict)


# Hypothesis favours small integers; explicit weights keep most entities usable.
usually = st.sampled_from([True, True, True, True, True, False])


@st.composite
def topologies(draw: st.DrawFn, permissive: bool = False) -> Topology:
    """Clusters c1..c5 with up to five nodes each. `permissive`: every cluster and node is
    declared, ready, untainted and has some capacity, so that clusters mostly compete."""
    topology = Topology()
    always = st.just(True)
    for index in range(draw(st.sampled_from([1, 2, 3, 3, 4, 4, 5]))):
        name = f"c{index + 1}"
        declared = draw(always if permissive else usually)
        ready = draw(always if permissive else usually)
        topology.clusters[name] = (declared, ready)
        if declared:
            topology.events.append(ClusterDeclared(at=0, cluster=name, tier="edge", ready=ready))
        topology.nodes[name] = []
        for n in range(draw(st.sampled_from([1, 2, 3] if permissive else [0, 1, 2, 3, 3, 4, 5]))):
            allocatable = Resources(
                draw(
                    st.sampled_from([4000, 1000, 2000, 8000, 8000, 16000] + [0] * (not permissive))
                ),
                draw(st.sampled_from([16, 2, 4, 8, 16, 32] + [0] * (not permissive))) * GI,
                draw(st.sampled_from([0, 0, 1, 2, 4])),
                draw(st.sampled_from([110, 0, 3, 110, 110, 110])),
            )
            foreign = Resources(
                draw(st.integers(0, 6)) * 250, draw(st.integers(0, 6)) * GI // 4, 0, 0
            )
            model = ModelNode(
                cluster=name,
                name=f"{name}-w{n}",
                allocatable=allocatable,
                foreign=foreign,
                labels=dict(draw(st.sampled_from(LABELS))),
                taints=tuple(
                    draw(st.lists(st.sampled_from(TAINTS), max_size=2, unique=True))
                    if not draw(always if permissive else usually)
                    else ()
                ),
                ready=draw(always if permissive else usually),
            )
            topology.nodes[name].append(model)
            topology.events.append(
                NodeDeclared(
                    at=0,
                    cluster=name,
                    node=model.name,
                    allocatable=allocatable,
                    labels=model.labels,
                    taints=model.taints,
                    ready=model.ready,
                    foreign=foreign,
                )
            )
            for r in range(draw(st.integers(0, 2))):
                amount = Resources(
                    draw(st.integers(0, 2)) * 500,
                    draw(st.integers(0, 2)) * GI // 2,
                    draw(st.sampled_from([0, 0, 0, 1])),
                    1,
                )
                model.reserved = model.reserved + amount
                topology.events.append(
                    CapacityReserved(
                        at=0,
                        cluster=name,
                        node=model.name,
                        request_id=f"old-{n}-{r}",
                        attempt=1,
                        amount=amount,
                    )
                )
    return topology


@st.composite
def requests_for(draw: st.DrawFn, topology: Topology, policy: Policy) -> Request:
    names = [*topology.clusters, *(["cx"] if draw(st.booleans()) else [])]
    chosen_names = draw(st.lists(st.sampled_from(names), min_size=1, max_size=6, unique=True))
    levels: list[tuple[str, ...]] = []
    rest = list(chosen_names)
    while rest:
        size = draw(st.integers(1, len(rest)))
        levels.append(tuple(rest[:size]))
        rest = rest[size:]
    tolerations = [
        TOLERATIONS[key] for key in draw(st.lists(st.sampled_from(sorted(TOLERATIONS)), max_size=2))
    ]
    workload = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}], "tolerations": tolerations},
    }
    replicas = draw(st.sampled_from([1, 1, 2, 3]))
    demand = Resources(
        draw(st.integers(0, 4)) * 250,
        draw(st.integers(0, 4)) * GI // 2,
        draw(st.sampled_from([0, 0, 0, 0, 0, 1])),
        1,
    ).scaled(replicas)
    mode = "cluster" if policy is Policy.SELECTED_CLUSTER else "default"
    select_node = None
    if policy is Policy.SELECTED_CLUSTER and draw(st.booleans()):
        mode = "node"
        pinned_cluster = draw(st.sampled_from(names))
        levels = [(pinned_cluster,)]
        candidates = [n.name for n in topology.nodes.get(pinned_cluster, [])] + ["nowhere-1"]
        select_node = draw(st.sampled_from(candidates))
    return Request(
        request_id="req-new",
        policy=policy,
        mode=mode,
        levels=tuple(levels),
        select_node=select_node,
        demand=demand,
        node_selector=dict(draw(st.sampled_from(SELECTORS))),
        workload=(workload,),
    )


def tolerated(request: Request, taint: Taint) -> bool:
    """The model's view of tolerations, for the fixed set of tolerations used here."""
    if taint.effect == "PreferNoSchedule":
        return True
    given_tolerations = request.workload[0]["spec"]["tolerations"]
    if TOLERATIONS["all"] in given_tolerations:
        return True
    if taint.key == "gpu":
        return TOLERATIONS["gpu"] in given_tolerations
    if (taint.key, taint.effect) == ("maint", "NoExecute"):
        return TOLERATIONS["maint-exec"] in given_tolerations
    return False


def feasible(request: Request, model: ModelNode) -> bool:
    free = model.allocatable - model.foreign - model.reserved
    demand = request.demand
    return (
        model.ready
        and model.declared
        and demand.cpu_m <= free.cpu_m
        and demand.memory <= free.memory
        and demand.gpu <= free.gpu
        and demand.pods <= free.pods
        and all(model.labels.get(k) == v for k, v in request.node_selector.items())
        and all(tolerated(request, taint) for taint in model.taints)
        and (request.select_node is None or request.select_node == model.name)
    )


def gedge_score(request: Request, model: ModelNode) -> float:
    """GEdge's GMostRequestedPriority score of a node, from what is already held on it."""
    held = model.foreign + model.reserved

    def free_percent(used: int, total: int) -> float:
        return 100 - (used / total * 100 if total > 0 else 100)

    score = free_percent(held.cpu_m, model.allocatable.cpu_m)
    score += free_percent(held.memory, model.allocatable.memory)
    if request.demand.gpu > 0:
        score += 200 * max(0, model.allocatable.gpu - held.gpu)
    return score


def feasible_nodes(topology: Topology, request: Request, name: str) -> list[ModelNode]:
    declared, ready = topology.clusters.get(name, (False, False))
    if not (declared and ready):
        return []
    return [m for m in topology.nodes[name] if feasible(request, m)]
