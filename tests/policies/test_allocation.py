"""Packing and spreading: GBinPackPriority, GLeastRequestedPriority, GBalancedPriority."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.events import AnyEvent
from gsch.model.request import Policy
from gsch.policies.allocation import (
    balanced_allocation_score,
    least_allocated_score,
    most_allocated_score,
)
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from tests.support.planning import chosen, cluster, node, request, snapshot_of


def fleet(used: list[float]) -> list[AnyEvent]:
    """One cluster, nodes of 8 cpu / 16 GiB with the given cpu already in use (memory alike)."""
    events: list[AnyEvent] = [cluster("c1")]
    for index, cpu in enumerate(used):
        events.append(
            node("c1", f"n{index}", cpu=8, memory_gi=16, used_cpu=cpu, used_memory_gi=cpu * 2)
        )
    return events


@pytest.mark.parametrize("mode", ["default", "mostallocated"])
def test_bin_packing_fills_the_fullest_node_that_fits(mode: str) -> None:
    snapshot = snapshot_of(fleet([1, 6, 7.8, 3]))
    wanted = request((("c1",),), cpu=1, memory_gi=1, policy=Policy.BIN_PACK, mode=mode)
    decision = plan(PROFILES[Policy.BIN_PACK], wanted, snapshot)
    # n2 (7.8 used) cannot take 1 more cpu; n1 is the fullest that can.
    assert chosen(decision) == "c1/n1"
    # The explanation names the scorer of the mode.
    (plugin,) = decision.explanation.levels[0].plugin_scores
    assert plugin.startswith("most allocated" if mode == "mostallocated" else "fewest nodes")


def test_bin_packing_modes_differ_on_a_mixed_fleet() -> None:
    """Kube's MostAllocated fills the node it fills most (the small one); the default packs
    into the node that holds the most such requests (the big one)."""
    snapshot = snapshot_of(
        [
            cluster("c1"),
            node("c1", "small", cpu=4, memory_gi=8),
            node("c1", "big", cpu=64, memory_gi=256),
        ]
    )
    for mode, expected in (("mostallocated", "c1/small"), ("default", "c1/big")):
        wanted = request((("c1",),), cpu=2, memory_gi=2, policy=Policy.BIN_PACK, mode=mode)
        assert chosen(plan(PROFILES[Policy.BIN_PACK], wanted, snapshot)) == expected


def test_least_requested_picks_the_emptiest_node() -> None:
    snapshot = snapshot_of(fleet([1, 6, 0.5, 3]))
    wanted = request((("c1",),), policy=Policy.LEAST_REQUESTED)
    decision = plan(PROFILES[Policy.LEAST_REQUESTED], wanted, snapshot)
    assert chosen(decision) == "c1/n2"


def test_balanced_prefers_the_node_whose_resources_stay_in_step() -> None:
    events: list[AnyEvent] = [
        cluster("c1"),
        # n0: cpu nearly full, memory empty; n1: both half used.
        node("c1", "n0", cpu=8, memory_gi=16, used_cpu=7, used_memory_gi=0),
        node("c1", "n1", cpu=8, memory_gi=16, used_cpu=4, used_memory_gi=8),
    ]
    wanted = request((("c1",),), policy=Policy.BALANCED)
    decision = plan(PROFILES[Policy.BALANCED], wanted, snapshot_of(events))
    assert chosen(decision) == "c1/n1"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=7), min_size=2, max_size=8))
def test_packing_never_picks_an_emptier_node_than_spreading(used: list[float]) -> None:
    snapshot = snapshot_of(fleet(used))
    pack = plan(PROFILES[Policy.BIN_PACK], request((("c1",),), policy=Policy.BIN_PACK), snapshot)
    spreading = request((("c1",),), policy=Policy.LEAST_REQUESTED)
    spread = plan(PROFILES[Policy.LEAST_REQUESTED], spreading, snapshot)
    assert pack.placed == spread.placed
    if pack.placed:
        nodes = snapshot.clusters["c1"].nodes
        packed = nodes[pack.placements[0].node].held.cpu_m
        spread_to = nodes[spread.placements[0].node].held.cpu_m
        # Scores are compared in whole points, so allow the width of one point (80 m cpu).
        assert packed >= spread_to - 80
        assert spread_to <= packed + 80


@pytest.mark.parametrize(
    "scorer", [most_allocated_score, least_allocated_score, balanced_allocation_score]
)
def test_scores_stay_within_0_and_100(scorer) -> None:  # type: ignore[no-untyped-def]
    snapshot = snapshot_of(fleet([0, 8]))
    for view in snapshot.clusters["c1"].nodes.values():
        score = scorer(request((("c1",),), cpu=4, memory_gi=8), view)
        assert 0.0 <= score <= 100.0


def test_gpus_count_only_on_nodes_that_have_them() -> None:
    snapshot = snapshot_of(
        [
            cluster("c1"),
            node("c1", "gpu", cpu=8, memory_gi=16, gpu=4),
            node("c1", "cpu", cpu=8, memory_gi=16),
        ]
    )
    gpu_node = snapshot.clusters["c1"].nodes["gpu"]
    cpu_node = snapshot.clusters["c1"].nodes["cpu"]
    wants_gpu = request((("c1",),), cpu=4, memory_gi=8, gpu=4)
    # On the GPU node all three resources end up half or fully used; GPU-less nodes ignore it.
    assert most_allocated_score(wants_gpu, gpu_node) == pytest.approx(100 * (0.5 + 0.5 + 1) / 3)
    assert most_allocated_score(request((("c1",),), cpu=4, memory_gi=8), cpu_node) == (
        pytest.approx(50.0)
    )
