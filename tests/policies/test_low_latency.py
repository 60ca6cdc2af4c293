"""GLowLatencyPriority: nearest cluster from the source, nearest node that fits inside it."""

from __future__ import annotations

from gsch.model.events import AnyEvent, LatencyReported
from gsch.model.request import Policy, Request, Source
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from tests.policies.test_framework import chosen, cluster, node, request, snapshot_of

LOW = PROFILES[Policy.LOW_LATENCY]


def latency(
    cluster_name: str, node_name: str, clusters: dict[str, float], nodes: dict[str, float]
) -> LatencyReported:
    return LatencyReported(
        at=0, cluster=cluster_name, node=node_name, to_clusters=clusters, to_nodes=nodes
    )


def fleet(*extra: AnyEvent) -> list[AnyEvent]:
    return [
        cluster("src"),
        node("src", "s1", cpu=2),
        node("src", "s2", cpu=8),
        node("src", "s3", cpu=8),
        cluster("near"),
        node("near", "n1"),
        cluster("far"),
        node("far", "f1", cpu=64, memory_gi=256),  # much freer, but far away
        cluster("unmeasured"),
        node("unmeasured", "u1", cpu=64, memory_gi=256),
        *extra,
    ]


def low_latency(levels: tuple[tuple[str, ...], ...], cpu: float = 0.5) -> Request:
    source = Source("src", "s1")
    return request(levels, cpu=cpu, policy=Policy.LOW_LATENCY, mode="fromnode", source=source)


MEASURED = latency(
    "src", "s1", {"src": 0.4, "near": 2.0, "far": 40.0}, {"s1": 0.0, "s2": 0.3, "s3": 0.9}
)


def test_the_nearest_cluster_wins_over_a_freer_one() -> None:
    decision = plan(LOW, low_latency((("far", "near"),)), snapshot_of(fleet(MEASURED)))
    assert chosen(decision) == "near/n1"
    trace = decision.explanation.levels[0]
    assert trace.scores == {"near": -2.0, "far": -40.0}


def test_inside_the_source_cluster_the_nearest_node_that_fits() -> None:
    # s1 is the source itself (0 ms) but has only 2 cpu; 3 cpu go to s2 at 0.3 ms, not s3.
    wanted = low_latency((("src",),), cpu=3)
    assert chosen(plan(LOW, wanted, snapshot_of(fleet(MEASURED)))) == "src/s2"
    assert chosen(plan(LOW, low_latency((("src",),), cpu=1), snapshot_of(fleet(MEASURED)))) == (
        "src/s1"
    )


def test_unmeasured_clusters_rank_last_and_the_explanation_says_so() -> None:
    decision = plan(LOW, low_latency((("unmeasured", "far"),)), snapshot_of(fleet(MEASURED)))
    assert chosen(decision) == "far/f1"
    notes = decision.explanation.levels[0].notes
    assert "no latency measured from src/s1" in notes["unmeasured"]


def test_levels_still_come_first() -> None:
    # The first level has only the far cluster: it is used, though "near" sits in level 2.
    decision = plan(LOW, low_latency((("far",), ("near",))), snapshot_of(fleet(MEASURED)))
    assert chosen(decision) == "far/f1"
    assert decision.level_index == 0


def test_without_any_report_it_still_places_and_says_why() -> None:
    decision = plan(LOW, low_latency((("near", "far"),)), snapshot_of(fleet()))
    assert decision.placed
    notes = decision.explanation.levels[0].notes
    assert notes["note 1"] == "no latency reported from source node src/s1"


def test_frompod_without_pod_inventory_is_explained() -> None:
    source = Source("src", None, "camera-7")
    wanted = request((("near",),), policy=Policy.LOW_LATENCY, mode="frompod", source=source)
    decision = plan(LOW, wanted, snapshot_of(fleet(MEASURED)))
    assert chosen(decision) == "near/n1"
    assert "camera-7" in decision.explanation.levels[0].notes["note 1"]
