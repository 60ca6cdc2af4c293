"""The generated fleet and requests `gsch bench --plan-only` times the planner on: a three-tier
fleet with about half of each node's cpu reserved, latency reports from a few source nodes (to
every cluster) with the pods running there, and one stream of requests per policy, mode and
form of levels (names, or label selectors that match 60 % of the fleet)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from gsch.clusters.topology import generated_topology
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    LatencyReported,
    NodeDeclared,
    PodsReported,
)
from gsch.model.ids import numbered_request_id
from gsch.model.request import Policy, Request, Source
from gsch.model.resources import Resources

SOURCES = 4  # source nodes reporting latency (near-edge clusters' first nodes)
SELECTOR_LEVELS = (("tier=near-edge",), ("tier=edge",), ("tier=cloud",))
RTT_MS = {"near-edge": (1.0, 20.0), "edge": (5.0, 40.0), "cloud": (20.0, 80.0)}
DEMAND = Resources(cpu_m=500, memory=256 << 20, pods=1)


@dataclass(frozen=True)
class Case:
    """One stream of requests: a policy, a mode, and the form of its levels."""

    policy: Policy
    mode: str
    levels: str  # "names" or "selectors"

    @property
    def label(self) -> str:
        return f"{self.policy.value} {self.mode}"


MODES: dict[Policy, tuple[str, ...]] = {
    Policy.MOST_REQUESTED: ("default", "cpu", "memory", "gpu"),
    Policy.BIN_PACK: ("default", "mostallocated"),
    Policy.LEAST_REQUESTED: ("default",),
    Policy.BALANCED: ("default",),
    Policy.LOW_LATENCY: ("fromnode", "frompod"),
    Policy.SELECTED_CLUSTER: ("cluster", "node"),
    Policy.SET_CLUSTERS: ("default",),
}


def cases(policies: list[Policy]) -> list[Case]:
    made = []
    for policy in policies:
        for mode in MODES[policy]:
            made.append(Case(policy, mode, "names"))
            if (policy, mode) != (Policy.SELECTED_CLUSTER, "node"):  # pinned: no selectors
                made.append(Case(policy, mode, "selectors"))
    return made


@dataclass(frozen=True)
class Fleet:
    clusters: list[str]
    nodes: dict[str, list[str]]
    sources: list[tuple[str, str]]  # (cluster, node) that report latency, a pod on each


def fleet_events(
    clusters: int, nodes_per_cluster: int, load: float, seed: int, fleet: Fleet
) -> Iterator[AnyEvent]:
    """The fleet's events in log order (filling `fleet` with names on the way): clusters,
    nodes with about `load` of their cpu reserved (varied per node), then the latency reports
    and pods of the source nodes."""
    chooser = random.Random(seed)
    topology = generated_topology(clusters, nodes_per_cluster)
    tiers = {}
    for cluster in topology.clusters:
        tiers[cluster.name] = cluster.tier
        fleet.clusters.append(cluster.name)
        fleet.nodes[cluster.name] = [node.name for node in cluster.nodes]
        yield ClusterDeclared(at=0, cluster=cluster.name, tier=cluster.tier, labels=cluster.labels)
        for node in cluster.nodes:
            yield NodeDeclared(
                at=0,
                cluster=cluster.name,
                node=node.name,
                allocatable=node.allocatable,
                labels=node.labels,
            )
            used = int(node.allocatable.cpu_m * load * chooser.uniform(0.5, 1.5))
            yield CapacityReserved(
                at=0,
                cluster=cluster.name,
                node=node.name,
                request_id=numbered_request_id("load", len(fleet.clusters)),
                attempt=1,
                amount=Resources(cpu_m=used),
            )
    near = [name for name in fleet.clusters if tiers[name] == "near-edge"]
    for index in range(SOURCES):
        source = near[index * len(near) // SOURCES]
        first = fleet.nodes[source][0]
        fleet.sources.append((source, first))
        yield LatencyReported(
            at=0,
            cluster=source,
            node=first,
            to_clusters={name: round(chooser.uniform(*RTT_MS[tiers[name]]), 2) for name in tiers},
            to_nodes={n: round(chooser.uniform(0.1, 1.0), 2) for n in fleet.nodes[source]},
        )
        yield PodsReported(at=0, cluster=source, node=first, pods=(f"default/source-{index}",))


def requests(case: Case, count: int, fleet: Fleet, seed: int = 7) -> list[Request]:
    chooser = random.Random(seed)
    made = []
    for index in range(count):
        source = None
        select_node = None
        if case.policy is Policy.LOW_LATENCY:
            which = chooser.randrange(SOURCES)
            cluster, node = fleet.sources[which]
            if case.mode == "fromnode":
                source = Source(cluster, node)
            else:  # a bare pod name: the request's namespace, here "default"
                source = Source(cluster, pod=f"source-{which}")
        picked = chooser.sample(fleet.clusters, 6)
        levels: tuple[tuple[str, ...], ...]
        if case.levels == "selectors":
            levels = SELECTOR_LEVELS
        elif case.policy is Policy.SELECTED_CLUSTER and case.mode == "node":
            levels = ((picked[0],),)
            select_node = chooser.choice(fleet.nodes[picked[0]])
        elif case.policy is Policy.SELECTED_CLUSTER:
            levels = ((picked[0],), (picked[1],), (picked[2],))
        else:
            levels = (tuple(picked[:2]), tuple(picked[2:4]), tuple(picked[4:]))
        made.append(
            Request(
                request_id=numbered_request_id("plan", index),
                policy=case.policy,
                mode=case.mode,
                levels=levels,
                select_node=select_node,
                source=source,
                demand=DEMAND,
            )
        )
    return made


def churn(fleet: Fleet, count: int, seed: int) -> list[AnyEvent]:
    """Cluster events as a running fleet appends them: reservations, releases of earlier
    ones, and clusters re-declared (readiness flapping, labels unchanged)."""
    chooser = random.Random(seed)
    held: list[CapacityReserved] = []
    made: list[AnyEvent] = []
    for index in range(count):
        roll = chooser.random()
        if roll < 0.1:
            name = chooser.choice(fleet.clusters)
            tier = name.rsplit("-", 1)[0]
            made.append(
                ClusterDeclared(
                    at=1, cluster=name, tier=tier, labels={"tier": tier}, ready=roll < 0.09
                )
            )
        elif roll < 0.55 or not held:
            cluster = chooser.choice(fleet.clusters)
            reserved = CapacityReserved(
                at=1,
                cluster=cluster,
                node=chooser.choice(fleet.nodes[cluster]),
                request_id=numbered_request_id("churn", index),
                attempt=1,
                amount=DEMAND,
            )
            held.append(reserved)
            made.append(reserved)
        else:
            gone = held.pop(chooser.randrange(len(held)))
            made.append(
                CapacityReleased(
                    at=1,
                    cluster=gone.cluster,
                    node=gone.node,
                    request_id=gone.request_id,
                    attempt=1,
                    reason="finished",
                )
            )
    return made
