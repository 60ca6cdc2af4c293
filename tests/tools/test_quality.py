"""`gsch bench --quality`: seeded instances, placing through the planner, exact optima, and
the packing GBinPackPriority promises (fewest nodes on mixed fleets, no fewer placed)."""

from __future__ import annotations

import json
import statistics

import pytest

from gsch.cli import main
from gsch.clusters.topology import SimCluster, SimNode, Topology
from gsch.model.request import Policy
from gsch.model.resources import Resources
from gsch.tools.quality.instances import FAMILIES, Demand, Instance, instances
from gsch.tools.quality.placing import place_in_order, total_rtt

GI = 2**30


def node(name: str, cores: int, gib: int, gpu: int = 0) -> SimNode:
    amount = Resources(cpu_m=cores * 1000, memory=gib * GI, gpu=gpu, pods=110)
    return SimNode(name, amount, {"kubernetes.io/hostname": name}, (), True)


def fleet(*clusters: tuple[str, tuple[SimNode, ...]]) -> Topology:
    return Topology(
        tuple(SimCluster(name, "edge", {}, True, nodes) for name, nodes in clusters), {}, 0.5
    )


def demands(count: int, cores: float, gib: float) -> tuple[Demand, ...]:
    amount = Resources(cpu_m=int(cores * 1000), memory=int(gib * GI), pods=1)
    return tuple(Demand(f"r-{i}", amount) for i in range(count))


# Four small nodes and one big one, in two clusters: 8 requests of 2 cores fit the big one.
SMALL_AND_BIG = Instance(
    "mixed",
    0,
    fleet(
        ("a", tuple(node(f"a-{i}", 4, 16) for i in range(4))),
        ("b", (node("b-big", 64, 256),)),
    ),
    demands(8, 2, 4),
)


def test_instances_are_the_same_for_the_same_seed_and_fit_some_node() -> None:
    for family in FAMILIES:
        first, again = instances(family, 2, 7), instances(family, 2, 7)
        assert first == again
        assert first[0].demands != first[1].demands
        for instance in first:
            rooms = [n.allocatable for _, n in instance.nodes]
            assert all(any(d.amount.fits_in(r) for r in rooms) for d in instance.demands)
    with pytest.raises(ValueError, match="unknown family"):
        instances("huge", 1)


def test_default_packing_fills_the_big_node_and_mostallocated_the_small_ones() -> None:
    packed = place_in_order(SMALL_AND_BIG, Policy.BIN_PACK)
    assert packed.count == 8
    assert packed.nodes_used == 1
    assert {where for where in packed.where} == {("b", "b-big")}
    # kube's MostAllocated, kept by name: each 2-core pod half fills a 4-core node.
    kube = place_in_order(SMALL_AND_BIG, Policy.BIN_PACK, "mostallocated")
    assert kube.count == 8
    assert kube.nodes_used == 4


def test_an_empty_gpu_node_is_opened_only_for_gpu_work_or_when_nothing_else_fits() -> None:
    instance = Instance(
        "mixed", 0, fleet(("g", (node("gpu", 64, 256, gpu=4), node("cpu", 16, 64)))),
        demands(3, 4, 8),
    )  # fmt: skip
    assert {w for w in place_in_order(instance, Policy.BIN_PACK).where} == {("g", "cpu")}
    larger = Instance("mixed", 0, instance.topology, demands(5, 4, 8))
    where = place_in_order(larger, Policy.BIN_PACK).where
    assert where[:4] == (("g", "cpu"),) * 4
    assert where[4] == ("g", "gpu")


def test_packing_places_no_fewer_requests_where_not_everything_fits() -> None:
    """Where the fleet cannot hold everything, the default mode places at least as many as
    kube's MostAllocated did (over seeded instances; no solver needed)."""
    overloaded = instances("overloaded", 8)
    default = sum(place_in_order(i, Policy.BIN_PACK).count for i in overloaded)
    kube = sum(place_in_order(i, Policy.BIN_PACK, "mostallocated").count for i in overloaded)
    assert default >= kube


def test_packing_places_as_many_as_mostallocated_on_the_mixed_fleets() -> None:
    """Where everything fits, the default mode places every request MostAllocated places, over
    the bench's seeds 0-29: the fleet's largest empty node is kept back for the late large
    requests that only it could hold (without that, seeds 8 and 12 each lost one). Not a law
    of every fleet: on seeds 30-229 it places 22 fewer of 12,802 (README, Placement quality)."""
    mixed = instances("mixed", 30)
    default = [place_in_order(i, Policy.BIN_PACK).count for i in mixed]
    kube = [place_in_order(i, Policy.BIN_PACK, "mostallocated").count for i in mixed]
    assert sum(default) >= sum(kube)


def test_low_latency_rtt_is_summed_from_each_source() -> None:
    (instance,) = instances("latency", 1)
    placed = place_in_order(instance, Policy.LOW_LATENCY, "fromnode")
    blind = place_in_order(instance, Policy.MOST_REQUESTED)
    assert placed.count == len(instance.demands)
    assert 0 < total_rtt(instance, placed) < total_rtt(instance, blind)


# --- against HiGHS (highspy is in the test extras; without it these say why they skip) ---


def solver() -> None:
    pytest.importorskip("highspy", reason="exact optima need highspy (pip install 'gsch[quality]')")


def test_the_optimum_of_a_small_instance_is_exact() -> None:
    solver()
    from gsch.tools.quality.optimum import fewest_nodes, least_rtt, most_placed

    best = fewest_nodes(SMALL_AND_BIG)
    assert (best.value, best.proven) == (1, True)
    assert set(best.where) == {4}  # every request on the big node (the fifth column)
    # 16-core pods fit only the big node, four of them.
    too_many = Instance("overloaded", 0, SMALL_AND_BIG.topology, demands(6, 16, 4))
    assert (most_placed(too_many).value, most_placed(too_many).proven) == (4, True)
    with pytest.raises(ValueError, match="fits on no node"):
        fewest_nodes(Instance("mixed", 0, SMALL_AND_BIG.topology, demands(1, 128, 4)))
    # From the source node: 2 cores, then 4. Greedy puts the first on the source (0 ms) and
    # the second, which no longer fits there, far away (10 ms); so does the optimum here.
    near = fleet(("near", (node("s", 4, 16),)), ("far", (node("f", 64, 256),)))
    latency = Topology(near.clusters, {"near": {"far": 10.0}, "far": {"near": 10.0}}, 0.5)
    two = Resources(cpu_m=2000, memory=GI, pods=1)
    four = Resources(cpu_m=4000, memory=GI, pods=1)
    sourced = Instance(
        "latency", 0, latency, (Demand("a", two, ("near", "s")), Demand("b", four, ("near", "s")))
    )
    greedy = place_in_order(sourced, Policy.LOW_LATENCY, "fromnode")
    assert greedy.where == (("near", "s"), ("far", "f"))
    assert total_rtt(sourced, greedy) == least_rtt(sourced).value == 10.0


def test_default_packing_is_within_1_3_of_the_optimum_on_mixed_fleets() -> None:
    solver()
    from gsch.tools.quality.optimum import fewest_nodes

    ratios = []
    for instance in instances("mixed", 6):
        placed = place_in_order(instance, Policy.BIN_PACK)
        ratios.append(placed.nodes_used / fewest_nodes(instance).conservative)
    assert statistics.fmean(ratios) <= 1.3, ratios


def test_the_command_prints_json_even_with_the_solver_banner(
    capfd: pytest.CaptureFixture[str],
) -> None:
    solver()
    args = ["bench", "--quality", "--instances", "1", "--solver-time-limit", "1", "-o", "json"]
    assert main(args) == 0
    rows = json.loads(capfd.readouterr().out)["rows"]
    assert {(r["family"], r["policy"], r["mode"]) for r in rows} >= {
        ("mixed", "GBinPackPriority", "default"),
        ("mixed", "GBinPackPriority", "mostallocated"),
        ("latency", "GLowLatencyPriority", "fromnode"),
    }
