"""A visit to a cluster finds its best node without scoring every node when the aggregates
tell which nodes lead in whole points (and without running the filters when they tell that
every node passes), and must still choose what a scan of every node chooses, with the same
score, rejections and counts in the explanation. Checked on clusters whose nodes tie often
(one node pool, small reservations, pending commits), with some nodes not ready, tainted or
full."""

from __future__ import annotations

import dataclasses

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView
from gsch.model.events import AnyEvent, CapacityReserved, ClusterDeclared, Placement, Taint
from gsch.model.request import Policy, Request
from gsch.model.resources import Resources
from gsch.policies.filters import COMMON_NODE_FILTERS, every_node_passes, filters_for
from gsch.policies.framework import Candidate, plan
from gsch.policies.most_requested import FREE_CAPACITY, free_capacity_top
from gsch.policies.registry import PROFILES
from gsch.policies.rules import DEFAULT_RULES
from gsch.policies.search import LevelScan, Ties, _best_node, _tie
from tests.support.planning import GI, node, request, snapshot_of

CLUSTERS = ("c1", "c2", "c3")
# 100m of 16 cpus is 0.625 points of free capacity: nodes of one pool tie in whole points
# often, and often do not.
STEP_M = 100


@st.composite
def fleets(draw: st.DrawFn) -> tuple[ClusterSnapshot, list[Placement]]:
    events: list[AnyEvent] = []
    pending: list[Placement] = []
    for name in CLUSTERS:
        events.append(ClusterDeclared(at=0, cluster=name, tier="edge", ready=True))
        # Declared in any order: a cluster's nodes are not in the order of their names.
        for n in draw(st.permutations(range(draw(st.integers(0, 6))))):
            events.append(
                node(
                    name,
                    f"{name}-n{n}",
                    cpu=16,
                    memory_gi=64,
                    gpu=draw(st.sampled_from([0, 0, 0, 1])),
                    used_cpu=draw(st.integers(0, 4)) * STEP_M / 1000,
                    # Sometimes nearly full: the capacity filter rejects the node.
                    used_memory_gi=draw(st.sampled_from([0, 0, 0, 1, 63.9])),
                    ready=draw(st.sampled_from([True, True, True, True, False])),
                    taints=draw(st.sampled_from([(), (), (), (Taint("maint", "NoSchedule"),)])),
                )
            )
            for r in range(draw(st.integers(0, 2))):
                amount = Resources(draw(st.integers(1, 3)) * STEP_M, GI // 4, 0, 1)
                events.append(
                    CapacityReserved(
                        at=0, cluster=name, node=f"{name}-n{n}", request_id=f"r{n}-{r}",
                        attempt=1, amount=amount,
                    )
                )  # fmt: skip
            if draw(st.sampled_from([False, False, True])):
                pending.append(Placement(name, f"{name}-n{n}", Resources(STEP_M, GI // 4, 0, 1)))
    snapshot = snapshot_of(events)
    return snapshot, pending


def asking(draw: st.DrawFn, levels: tuple[tuple[str, ...], ...]) -> Request:
    made = request(
        levels,
        cpu=draw(st.sampled_from([0.1, 0.1, 0.5])),
        memory_gi=draw(st.sampled_from([0.25, 0.25, 1])),
        gpu=draw(st.sampled_from([0, 0, 0, 1])),
        mode=draw(st.sampled_from(["default", "default", "default", "cpu"])),
    )
    # Request ids differ so that ties between nodes fall differently.
    return msgspec.structs.replace(made, request_id=f"req-{draw(st.integers(0, 10**6))}")


def scan_of(req: Request, shortcuts: bool) -> LevelScan:
    filters = filters_for(req, COMMON_NODE_FILTERS)
    if not shortcuts:  # every node filtered, every one that passes scored
        return LevelScan(req, DEFAULT_RULES, (), filters, FREE_CAPACITY.score)
    return LevelScan(
        req, DEFAULT_RULES, (), filters, FREE_CAPACITY.score, free_capacity_top,
        every_node_passes(req, filters),
    )  # fmt: skip


def seen(scan: LevelScan, found: Candidate | None) -> tuple[object, ...]:
    chosen = None if found is None else (found.cluster, found.node.name, found.score)
    rejected = (scan.rejections, scan.unschedulable, dict(scan.filtered))
    return chosen, rejected, scan.nodes, scan.visited


def top_by_scores(req: Request, cluster: ClusterView) -> tuple[str, ...]:
    """The definition: the ready nodes with the highest score in whole points, by name."""
    ready = [n for n in cluster.nodes.values() if n.declared and n.ready]
    points = {n.name: round(FREE_CAPACITY.score(req, n)) for n in ready}
    return tuple(sorted(name for name, p in points.items() if p == max(points.values())))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_visit_chooses_and_explains_what_a_scan_of_every_node_does(data: st.DataObject) -> None:
    snapshot, pending = data.draw(fleets())
    snapshot.assume(pending)
    req = asking(data.draw, (CLUSTERS,))
    filters = filters_for(req, COMMON_NODE_FILTERS)
    passes = every_node_passes(req, filters)
    assert passes is not None  # the common filters can all tell from the aggregates
    for cluster in snapshot.clusters.values():
        top = free_capacity_top(req, cluster)
        if top is not None:
            assert top == top_by_scores(req, cluster)
        if passes(cluster):
            assert all(f(req, n) is None for n in cluster.nodes.values() for f in filters)
        full, shortcut = scan_of(req, shortcuts=False), scan_of(req, shortcuts=True)
        expected, got = seen(full, full.visit(cluster)), seen(shortcut, shortcut.visit(cluster))
        reference, _, _ = _best_node(req, cluster, filters, FREE_CAPACITY.score)
        assert expected[0] == (
            None if reference is None else (cluster.name, reference.node.name, reference.score)
        )
        if top is not None and len(top) == 1 and got[2] == 1:
            # One node leads alone and passes: only it is looked at (and counted).
            assert got[0] == expected[0]
        else:
            assert got == expected


# A profile that scores every node unless one leads alone in whole points: how clusters
# were visited before the nodes tied at the top were known.
ALONE_ONLY = dataclasses.replace(
    FREE_CAPACITY,
    top_nodes=lambda req, cluster: (
        top if (top := free_capacity_top(req, cluster)) is not None and len(top) == 1 else None
    ),
)
PROFILE = PROFILES[Policy.MOST_REQUESTED]
LEADERS_ALONE = dataclasses.replace(PROFILE, scorers=(ALONE_ONLY,))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_plans_and_their_explanations_are_those_of_scoring_every_tied_node(
    data: st.DataObject,
) -> None:
    snapshot, pending = data.draw(fleets())
    snapshot.assume(pending)
    levels = data.draw(
        st.lists(st.lists(st.sampled_from([*CLUSTERS, "cx"]), min_size=1, max_size=3,
                          unique=True).map(tuple), min_size=1, max_size=2).map(tuple)
    )  # fmt: skip
    req = asking(data.draw, levels)
    for policy in (Policy.MOST_REQUESTED, Policy.SET_CLUSTERS, Policy.SELECTED_CLUSTER):
        profile = PROFILES[policy]
        asked = msgspec.structs.replace(req, policy=policy)
        if policy is Policy.SELECTED_CLUSTER:
            asked = msgspec.structs.replace(asked, mode="cluster")
        before = dataclasses.replace(profile, scorers=(ALONE_ONLY,))
        assert plan(profile, asked, snapshot) == plan(before, asked, snapshot)


@given(st.text(max_size=20), st.lists(st.text(max_size=20), min_size=1, max_size=6))
def test_the_request_s_tie_hasher_is_the_tie_hash(request_id: str, names: list[str]) -> None:
    names = [n.encode("utf-8", "replace").decode() for n in names]
    request_id = request_id.encode("utf-8", "replace").decode()
    req = msgspec.structs.replace(request((("c1",),)), request_id=request_id)
    ties = Ties(request_id)
    assert [ties(n) for n in names] == [_tie(req, n) for n in names]
    lowest = min(_tie(req, n) for n in names)
    assert ties.lowest(names) == [n for n in names if _tie(req, n) == lowest]
