"""GMostRequestedPriority as GEdge built it: most free capacity wins, +200 per free GPU when
the workload asks for GPUs. The test-bed example is computed by hand from GEdge's formula."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gsch.clusters.snapshot import ClusterSnapshot, NodeView
from gsch.model.events import AnyEvent, CapacityReserved, ClusterDeclared, NodeDeclared
from gsch.model.request import Policy, Request
from gsch.model.resources import Resources
from gsch.policies.framework import plan
from gsch.policies.most_requested import GPU_WEIGHT, free_capacity_score
from gsch.policies.registry import PROFILES

GI = 2**30
MOST = PROFILES[Policy.MOST_REQUESTED]


NOTHING = Resources()


def view(
    cpu: int, memory_gi: int, gpu: int = 0, used: Resources = NOTHING, **extra: Any
) -> NodeView:
    return NodeView(
        "c1",
        "n1",
        allocatable=Resources(cpu * 1000, memory_gi * GI, gpu, 110),
        foreign=used,
        ready=True,
        declared=True,
        **extra,
    )


def ask(mode: str = "default", cpu_m: int = 100, gpu: int = 0) -> Request:
    return Request(
        request_id="r",
        policy=Policy.MOST_REQUESTED,
        mode=mode,
        levels=(("c1",),),
        demand=Resources(cpu_m, GI // 4, gpu, 1),
    )


def test_score_is_free_cpu_percent_plus_free_memory_percent() -> None:
    node = view(4, 8, used=Resources(1000, 6 * GI))
    assert free_capacity_score(ask(), node) == pytest.approx(75 + 25)
    assert free_capacity_score(ask("cpu"), node) == pytest.approx(75)
    assert free_capacity_score(ask("memory"), node) == pytest.approx(25)


def test_reservations_count_as_used() -> None:
    node = view(4, 8, used=Resources(1000, 0))
    node.reserved = Resources(1000, 4 * GI)
    assert free_capacity_score(ask(), node) == pytest.approx(50 + 50)


def test_gpu_term_only_when_gpus_are_requested() -> None:
    node = view(8, 32, gpu=4, used=Resources(0, 0, 1, 0))
    assert free_capacity_score(ask(), node) == pytest.approx(200)
    assert free_capacity_score(ask(gpu=1), node) == pytest.approx(200 + 3 * GPU_WEIGHT)
    assert free_capacity_score(ask("gpu"), node) == pytest.approx(3 * GPU_WEIGHT)
    assert GPU_WEIGHT == 200


def test_a_node_without_allocatable_counts_as_full() -> None:
    assert free_capacity_score(ask(), view(0, 0)) == 0


# --- a GEdge test-bed-like topology --------------------------------------------------------


def gedge_testbed() -> ClusterSnapshot:
    """Four clusters with a few workers each; c3 has a GPU node, c2-w3 one spare GPU."""
    nodes = [
        # cluster, node, cpu, memory GiB, gpus, used cpu, used memory GiB, used gpus
        ("c1", "c1-w1", 4, 8, 0, 3, 6, 0),  # score 25 + 25 = 50
        ("c1", "c1-w2", 4, 8, 0, 2, 2, 0),  # 50 + 75 = 125
        ("c2", "c2-w1", 8, 16, 0, 1, 4, 0),  # 87.5 + 75 = 162.5
        ("c2", "c2-w2", 8, 16, 0, 4, 8, 0),  # 50 + 50 = 100
        ("c2", "c2-w3", 8, 16, 1, 6, 4, 0),  # 25 + 75 = 100 (+200 with a GPU request)
        ("c3", "c3-gpu1", 8, 32, 2, 6, 24, 0),  # 25 + 25 = 50 (+400 with a GPU request)
        ("c3", "c3-w1", 8, 32, 0, 1, 2, 0),  # 87.5 + 93.75 = 181.25
        ("c4", "c4-w1", 16, 64, 0, 12, 48, 0),  # 25 + 25 = 50
    ]
    events: list[AnyEvent] = [
        ClusterDeclared(at=0, cluster=name, tier=tier)
        for name, tier in (("c1", "edge"), ("c2", "near-edge"), ("c3", "near-edge"))
    ]
    events.append(ClusterDeclared(at=0, cluster="c4", tier="cloud"))
    for cluster, node, cpu, memory, gpus, used_cpu, used_memory, used_gpus in nodes:
        events.append(
            NodeDeclared(
                at=0,
                cluster=cluster,
                node=node,
                allocatable=Resources(cpu * 1000, memory * GI, gpus, 110),
                foreign=Resources(used_cpu * 1000, used_memory * GI, used_gpus, 5),
            )
        )
    snapshot = ClusterSnapshot()
    for seq, event in enumerate(events, start=1):
        snapshot.apply(event, seq)
    return snapshot


def most(
    levels: tuple[tuple[str, ...], ...], cpu: float, memory_gi: float, gpu: int = 0, mode: str = ""
) -> Request:
    return Request(
        request_id="req-t",
        policy=Policy.MOST_REQUESTED,
        mode=mode or "default",
        levels=levels,
        demand=Resources(int(cpu * 1000), int(memory_gi * GI), gpu, 1),
    )


ALL = (("c1", "c2", "c3", "c4"),)


@pytest.mark.parametrize(
    ("levels", "cpu", "memory", "gpu", "mode", "expected", "scores"),
    [
        # One group of four: the cluster whose best node has the most free capacity.
        (ALL, 0.5, 0.5, 0, "", "c3/c3-w1", {"c1": 125, "c2": 162.5, "c3": 181.25, "c4": 50}),
        # A GPU request: only GPU nodes fit, and 200 per free GPU outweighs the rest.
        (ALL, 0.5, 0.5, 1, "", "c3/c3-gpu1", {"c2": 300, "c3": 450}),
        # Only c2-w1 and c3-w1 have 4.5 cpu free: c1 and c4 drop out of the competition.
        (ALL, 4.5, 1, 0, "", "c3/c3-w1", {"c2": 162.5, "c3": 181.25}),
        # Mode memory ranks by free memory only.
        (ALL, 0.5, 0.5, 0, "memory", "c3/c3-w1", {"c1": 75, "c2": 75, "c3": 93.75, "c4": 25}),
        # Mode cpu: c2-w1 and c3-w1 tie at 87.5; either may win (a hash of request and
        # cluster decides).
        (
            ALL,
            0.5,
            0.5,
            0,
            "cpu",
            "c2/c2-w1|c3/c3-w1",
            {"c1": 50, "c2": 87.5, "c3": 87.5, "c4": 25},
        ),
        # Levels: c1 alone first; it fits, so the better clusters of level 2 are not tried.
        ((("c1",), ("c2", "c3"), ("c4",)), 0.5, 0.5, 0, "", "c1/c1-w2", {"c1": 125}),
        # c1 cannot hold 3 cpu: level 2's group competes.
        ((("c1",), ("c2", "c3"), ("c4",)), 3, 1, 0, "", "c3/c3-w1", {"c2": 162.5, "c3": 181.25}),
    ],
)
def test_gedge_testbed(
    levels: tuple[tuple[str, ...], ...],
    cpu: float,
    memory: float,
    gpu: int,
    mode: str,
    expected: str,
    scores: dict[str, float],
) -> None:
    decision = plan(MOST, most(levels, cpu, memory, gpu, mode), gedge_testbed())
    assert decision.placed
    placement = decision.placements[0]
    assert f"{placement.cluster}/{placement.node}" in expected.split("|")
    trace = decision.explanation.levels[-1]
    assert trace.chosen == f"{placement.cluster}/{placement.node}"
    assert trace.scores.keys() == scores.keys()
    for name, score in scores.items():
        assert math.isclose(trace.scores[name], score), (name, trace.scores[name], score)


def test_gedge_testbed_gpu_term_changes_the_ranking() -> None:
    """Without the GPU term c2-w3 (100) would beat c3-gpu1 (50); with it c3-gpu1 wins."""
    snapshot = gedge_testbed()
    c2_w3 = snapshot.clusters["c2"].nodes["c2-w3"]
    c3_gpu1 = snapshot.clusters["c3"].nodes["c3-gpu1"]
    no_gpu, one_gpu = most(ALL, 0.5, 0.5), most(ALL, 0.5, 0.5, gpu=1)
    assert free_capacity_score(no_gpu, c2_w3) == pytest.approx(100)
    assert free_capacity_score(no_gpu, c3_gpu1) == pytest.approx(50)
    assert free_capacity_score(one_gpu, c2_w3) == pytest.approx(300)
    assert free_capacity_score(one_gpu, c3_gpu1) == pytest.approx(450)
    decision = plan(MOST, most((("c2", "c3"),), 0.5, 0.5, 1), snapshot)
    assert decision.placements[0].node == "c3-gpu1"


def test_gedge_testbed_reservations_move_the_next_placement() -> None:
    snapshot = gedge_testbed()
    first = plan(MOST, most(ALL, 2, 8), snapshot)
    assert first.placements[0].node == "c3-w1"
    # Commit it the way the worker does, then plan the next identical request.
    snapshot.apply(
        CapacityReserved(
            at=1,
            cluster="c3",
            node="c3-w1",
            request_id="req-t",
            attempt=1,
            amount=first.placements[0].amount,
        ),
        100,
    )
    # c3-w1 now: cpu 3/8 used (62.5 free), memory 10/32 used (68.75 free) = 131.25 < 162.5.
    second = plan(MOST, most(ALL, 2, 8), snapshot)
    assert f"{second.placements[0].cluster}/{second.placements[0].node}" == "c2/c2-w1"


def test_gedge_testbed_nothing_fits() -> None:
    decision = plan(MOST, most(ALL, 20, 100), gedge_testbed())
    assert not decision.placed
    assert decision.explanation.levels[0].rejections == {
        "c1": ["2/2 nodes: insufficient cpu, memory"],
        "c2": ["3/3 nodes: insufficient cpu, memory"],
        "c3": ["2/2 nodes: insufficient cpu, memory"],
        "c4": ["1/1 nodes: insufficient cpu, memory"],
    }


def test_the_nodes_at_the_top_of_a_cluster_are_those_tied_in_whole_points() -> None:
    """A visit scores only the nodes the cluster's aggregates name at the top: every node
    that ties with the best in whole points (ties go to the request's hash, as in a scan),
    by name; one alone is the only node looked at."""
    from gsch.policies.most_requested import free_capacity_top
    from tests.support.planning import cluster, node, snapshot_of

    def top(*used: float) -> tuple[str, ...] | None:
        snapshot = snapshot_of(
            [cluster("c1"), *(node("c1", f"n{i}", cpu=8, used_cpu=u) for i, u in enumerate(used))]
        )
        return free_capacity_top(ask(), snapshot.clusters["c1"])

    assert top(1.0, 2.0) == ("n0",)  # 187.5 against 175: n0 leads by 12 points
    assert top(1.0, 0.98) == ("n0", "n1")  # 187.5 and 187.75: both 188 in whole points
    assert top(2.0, 1.0, 0.98) == ("n1", "n2")
    assert free_capacity_top(ask(mode="cpu"), snapshot_of([cluster("c1")]).clusters["c1"]) is None
    assert free_capacity_top(ask(), snapshot_of([cluster("c1")]).clusters["c1"]) == ()
