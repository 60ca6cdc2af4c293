"""Large levels are searched, not scanned: best bound first over the snapshot's standing
rankings (kept current from events), in the request's order, or in latency order from the
source. Whatever the policy, whatever order capacity, pending and relabelling events came in,
and however the selectors of a level overlap, the search must choose what the full scan
chooses, and every standing ranking must equal one built from scratch."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    LatencyReported,
    NodeDeclared,
    Placement,
    PodsReported,
)
from gsch.model.request import Policy, Request, Source
from gsch.model.resources import Resources
from gsch.policies.allocation import LEAST_ALLOCATED
from gsch.policies.filters import COMMON_NODE_FILTERS, resource_fit
from gsch.policies.framework import Decision, Profile, plan
from gsch.policies.most_requested import FREE_CAPACITY
from gsch.policies.packing import kept_back
from gsch.policies.registry import PROFILES
from gsch.policies.rules import DEFAULT_RULES
from gsch.policies.search import _best_node
from gsch.policies.strategies import RankedByScore
from tests.support.planning import GI, node, request, searching_from, snapshot_of

# Two plugins with bounds, weighed: the profile's bound is the weighted sum of their
# normalised ceilings, which must still never cut off the cluster a full scan would choose.
WEIGHED = dataclasses.replace(
    PROFILES[Policy.MOST_REQUESTED],
    name="free capacity + least allocated x2",
    scorers=(FREE_CAPACITY, dataclasses.replace(LEAST_ALLOCATED, weight=2.0)),
)
# Every policy (and mode) that plans a level, and the weighed profile.
CASES: list[tuple[Profile, Policy, str]] = [
    *((PROFILES[Policy.MOST_REQUESTED], Policy.MOST_REQUESTED, m)
      for m in ("default", "cpu", "memory", "gpu")),
    (PROFILES[Policy.BIN_PACK], Policy.BIN_PACK, "default"),
    (PROFILES[Policy.BIN_PACK], Policy.BIN_PACK, "mostallocated"),
    (PROFILES[Policy.LEAST_REQUESTED], Policy.LEAST_REQUESTED, "default"),
    (PROFILES[Policy.BALANCED], Policy.BALANCED, "default"),
    (PROFILES[Policy.LOW_LATENCY], Policy.LOW_LATENCY, "fromnode"),
    (PROFILES[Policy.LOW_LATENCY], Policy.LOW_LATENCY, "frompod"),
    (PROFILES[Policy.SELECTED_CLUSTER], Policy.SELECTED_CLUSTER, "cluster"),
    (PROFILES[Policy.SET_CLUSTERS], Policy.SET_CLUSTERS, "default"),
    (WEIGHED, Policy.MOST_REQUESTED, "default"),
]  # fmt: skip
TIERS = ["near-edge", "edge", "cloud"]
REGIONS = ["kr", "us"]
SOURCE = ("c00", "c00-n0")
POD = "default/source-pod"


@st.composite
def fleets(draw: st.DrawFn) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    names = [f"c{index:02d}" for index in range(draw(st.integers(1, 12)))]
    for name in names:
        labels = {"tier": draw(st.sampled_from(TIERS)), "region": draw(st.sampled_from(REGIONS))}
        ready = draw(st.sampled_from([True, True, True, False]))
        events.append(
            ClusterDeclared(at=0, cluster=name, tier=labels["tier"], labels=labels, ready=ready)
        )
        # One node pool per cluster, mostly (clusters of one shape get exact bounds); some
        # clusters mix sizes, and a few nodes have nothing of cpu or memory allocatable.
        pool = (draw(st.sampled_from([1, 2, 4, 8])), draw(st.sampled_from([2, 4, 8])))
        for n in range(draw(st.integers(0, 4))):
            mixed = draw(st.sampled_from([False, False, True]))
            cpu, memory = (
                (draw(st.sampled_from([0, 1, 2, 4, 8])), draw(st.sampled_from([0, 2, 4, 8])))
                if mixed
                else pool
            )
            events.append(
                node(
                    name,
                    f"{name}-n{n}",
                    cpu=cpu,
                    memory_gi=memory,
                    gpu=draw(st.sampled_from([0, 0, 1, 2])),
                    used_cpu=draw(st.sampled_from([0, 0.5, 1])),
                    # Memory used apart from cpu: a cluster's bound is then often above its
                    # score, and balance differs from node to node.
                    used_memory_gi=draw(st.sampled_from([0, 0.5, 1, 1.5, 3])),
                    ready=draw(st.sampled_from([True, True, True, False])),
                )
            )
    # Latency from the source node to some clusters (ties included), and its pods.
    measured = draw(st.lists(st.sampled_from(names), unique=True))
    rtts = {c: draw(st.sampled_from([0.5, 2.0, 2.0, 7.5, 30.0])) for c in measured}
    nodes = {f"c00-n{n}": draw(st.sampled_from([0.0, 0.3, 0.9])) for n in range(4)}
    events.append(
        LatencyReported(at=0, cluster=SOURCE[0], node=SOURCE[1], to_clusters=rtts, to_nodes=nodes)
    )
    events.append(PodsReported(at=0, cluster=SOURCE[0], node=SOURCE[1], pods=(POD,)))
    return events


@st.composite
def changes_of(draw: st.DrawFn, events: list[AnyEvent]) -> list[AnyEvent]:
    """Reservations and releases on the fleet's nodes, as workers and binders append them,
    relabelled clusters, and a newer latency report from the source."""
    nodes = [(e.cluster, e.node) for e in events if isinstance(e, NodeDeclared)]
    declared = [e for e in events if isinstance(e, ClusterDeclared)]
    changes: list[AnyEvent] = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["reserve", "reserve", "release", "relabel", "latency"]))
        reserved = [c for c in changes if isinstance(c, CapacityReserved)]
        if kind == "release" and reserved:
            held = draw(st.sampled_from(reserved))
            changes.append(
                CapacityReleased(
                    at=1, cluster=held.cluster, node=held.node, request_id=held.request_id,
                    attempt=1, reason="finished",
                )
            )  # fmt: skip
        elif kind == "relabel":
            was = draw(st.sampled_from(declared))
            labels = {"tier": draw(st.sampled_from(TIERS)), "region": was.labels["region"]}
            ready = draw(st.booleans())
            changes.append(msgspec.structs.replace(was, labels=labels, ready=ready, at=1))
        elif kind == "latency":
            rtts = {d.cluster: draw(st.sampled_from([0.5, 2.0, 9.0])) for d in declared[::2]}
            changes.append(
                LatencyReported(at=1, cluster=SOURCE[0], node=SOURCE[1], to_clusters=rtts)
            )
        elif nodes:
            cluster, name = draw(st.sampled_from(nodes))
            amount = Resources(draw(st.sampled_from([250, 1000, 3000])), GI // 2, 0, 1)
            changes.append(
                CapacityReserved(
                    at=1, cluster=cluster, node=name, request_id=f"r{i}", attempt=1, amount=amount
                )
            )
    return changes


@st.composite
def pending_of(draw: st.DrawFn, events: list[AnyEvent]) -> list[Placement]:
    """Placements this process is committing (assumed on the snapshot, not in the log)."""
    nodes = [(e.cluster, e.node) for e in events if isinstance(e, NodeDeclared)]
    if not nodes:
        return []
    picked = draw(st.lists(st.sampled_from(nodes), max_size=3))
    amount = Resources(draw(st.sampled_from([500, 2000])), GI, draw(st.sampled_from([0, 1])), 1)
    return [Placement(cluster, name, amount) for cluster, name in picked]


LEVELS = st.lists(
    st.lists(
        st.sampled_from(["tier=near-edge", "tier=edge", "tier=cloud", "region=kr",
                         "tier=edge&region=us", "c03", "c99"]),
        min_size=1, max_size=3, unique=True,
    ).map(tuple),
    min_size=1, max_size=3,
).map(tuple)  # fmt: skip


def asking(
    policy: Policy, mode: str, levels: tuple[tuple[str, ...], ...], demand: Resources
) -> Request:
    source = None
    if policy is Policy.LOW_LATENCY:
        source = Source(SOURCE[0], pod=POD) if mode == "frompod" else Source(*SOURCE)
    made = request(levels, policy=policy, mode=mode, source=source)
    return msgspec.structs.replace(made, demand=demand)


def planned_with(
    profile: Profile, search_from: int, req: Request, snap: ClusterSnapshot
) -> Decision:
    """Plan with levels of more than `search_from` clusters searched (0: every level that
    can be; huge: every level is scanned whole)."""
    return plan(searching_from(profile, search_from), req, snap)


def each_case(cases: list[tuple[Profile, Policy, str]], examples: int) -> Any:
    """A property over each case (profile, policy, mode), with its own examples."""

    def decorate(test: Any) -> Any:
        drawn = given(data=st.data())(test)
        limited = settings(
            max_examples=examples, suppress_health_check=[HealthCheck.too_slow], deadline=None
        )(drawn)
        ids = [f"{profile.name}-{mode}" for profile, _, mode in cases]
        return pytest.mark.parametrize(("profile", "policy", "mode"), cases, ids=ids)(limited)

    return decorate


@each_case(CASES, examples=40)
def test_searching_chooses_what_the_full_scan_chooses(
    profile: Profile, policy: Policy, mode: str, data: st.DataObject
) -> None:
    events = data.draw(fleets())
    changes = data.draw(changes_of(events))
    pending = data.draw(pending_of(events + changes))
    demand = Resources(
        data.draw(st.sampled_from([250, 1000, 3000])),
        data.draw(st.sampled_from([GI // 4, GI, 3 * GI])),
        data.draw(st.sampled_from([0, 0, 1])),
        1,
    )
    req = asking(policy, mode, data.draw(LEVELS), demand)
    # Rankings built before the later events, then kept current by them...
    kept = snapshot_of(events)
    planned_with(profile, 0, req, kept)
    for seq, change in enumerate(changes, start=len(events) + 1):
        kept.apply(change, seq)
    kept.assume(pending)
    # ... must equal rankings built from scratch, and choose as the full scan chooses.
    fresh = snapshot_of(events + changes)
    fresh.assume(pending)
    expected = planned_with(profile, 10**9, req, fresh)
    for snapshot in (kept, fresh):
        decision = planned_with(profile, 0, req, snapshot)
        assert decision.placements == expected.placements
        assert decision.level_index == expected.level_index
        if not expected.placed:  # then every cluster counted, and whether it should wait
            assert decision.waits_for_capacity == expected.waits_for_capacity
    for (requirements, _), ranked in kept._ranked.items():
        # A ranking the last plan did not read (a later level's, when an earlier one placed)
        # still holds its changed clusters as marked: they are re-placed when it is read.
        ranked.flush(kept.clusters)
        members = fresh.select(requirements)
        assert sorted(ranked.keys) == members
        assert ranked.keys == {name: ranked.key(fresh.clusters[name]) for name in members}
        assert ranked.ordered() == sorted((-v, n) for n, (_, v) in ranked.keys.items())
    for key, order in kept._latency_orders.items():
        assert list(order) == sorted(fresh.latency_order(*key))
    for with_gpus in (False, True):  # bin packing's empty nodes, largest first
        orders = [s.largest_empty(with_gpus, 10**6) for s in (kept, fresh)]
        assert [[(n.cluster, n.name) for n in order] for order in orders] == [
            [(n.cluster, n.name) for n in orders[1]]
        ] * 2


FILTERS = COMMON_NODE_FILTERS
BOUNDED = [case for case in CASES if isinstance(case[0].strategy, RankedByScore)]


@each_case(BOUNDED, examples=60)
def test_no_node_that_fits_scores_above_its_clusters_bound(
    profile: Profile, policy: Policy, mode: str, data: st.DataObject
) -> None:
    """The bound every search stops on, checked node by node (pending commits included); and
    on a cluster of one node pool where every node fits, the bound is the best node's score
    (so searches stop early) for the policies whose bound is exact there."""
    events = data.draw(fleets())
    snapshot = snapshot_of(events + data.draw(changes_of(events)))
    snapshot.assume(data.draw(pending_of(events)))
    demand = Resources(
        data.draw(st.sampled_from([0, 250, 1000, 3000])),
        data.draw(st.sampled_from([0, GI // 4, GI, 3 * GI])),
        data.draw(st.sampled_from([0, 0, 1])),
        1,
    )
    req = asking(policy, mode, (("c00",),), demand)
    state = profile.pre_score(req, snapshot, DEFAULT_RULES)  # the mode's scorer and bound
    search = state.search
    assert search is not None
    for cluster in snapshot.clusters.values():
        bound = search.bound(cluster)
        ready = [n for n in cluster.nodes.values() if n.declared and n.ready]
        scores = [state.scorer(req, n) for n in ready if resource_fit(req, n) is None]
        for score in scores:
            assert score <= bound + 1e-9
        top = state.top_nodes(req, cluster) if state.top_nodes is not None else None
        if (
            top is not None
            and len(top) == 1
            and all(f(req, cluster.nodes[top[0]]) is None for f in FILTERS)
        ):
            # The node a visit takes without looking at the others is the scan's choice.
            scanned, _, _ = _best_node(req, cluster, FILTERS, state.scorer)
            assert scanned is not None
            assert scanned.node.name == top[0]
        pools = {n.allocatable for n in ready}
        one_pool = len(pools) == 1 and all(a.cpu_m > 0 and a.memory > 0 for a in pools)
        exact = exact_bound(profile, req) and cluster.name != kept_back_in(req, snapshot)
        if one_pool and scores and len(scores) == len(ready) and exact:
            assert bound <= max(scores) + 1e-9


def kept_back_in(req: Request, snapshot: ClusterSnapshot) -> str | None:
    """The cluster of the node bin packing keeps back from this request (its score there is
    below the bound, which ranks clusters for every request of the size alike)."""
    if req.policy is not Policy.BIN_PACK or req.mode == "mostallocated":
        return None
    kept = kept_back(req, snapshot)
    return kept[0].cluster if kept is not None else None


def exact_bound(profile: Profile, req: Request) -> bool:
    """Whether the profile's bound is the best node's score on a cluster of one node pool
    whose nodes all fit: not for balance (a gap range, not one node's gap), nor where free
    capacity adds the most free GPUs to the best cpu and memory (maybe of two nodes)."""
    if profile is WEIGHED or req.policy is Policy.BALANCED:
        return False
    return not (req.policy is Policy.MOST_REQUESTED and req.mode == "default" and req.demand.gpu)
