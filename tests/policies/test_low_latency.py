"""GLowLatencyPriority: nearest cluster from the source, nearest node that fits inside it."""

from __future__ import annotations

from typing import Any

import msgspec

from gsch.model.events import AnyEvent, LatencyReported, PodsReported
from gsch.model.request import Policy, Request, Source
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules
from tests.support.planning import chosen, cluster, node, request, snapshot_of

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


def pods(cluster_name: str, node_name: str, *names: str) -> PodsReported:
    return PodsReported(at=0, cluster=cluster_name, node=node_name, pods=names)


def from_pod(
    levels: tuple[tuple[str, ...], ...], pod: str, cpu: float = 0.5, **extra: Any
) -> Request:
    source = Source("src", None, pod)
    return request(
        levels, cpu=cpu, policy=Policy.LOW_LATENCY, mode="frompod", source=source, **extra
    )


# The pod runs on s1: the same latencies as fromnode s1 apply.
CAMERA = pods("src", "s1", "video/camera-7", "video/other")


def test_frompod_ranks_from_the_node_that_runs_the_pod() -> None:
    snapshot = snapshot_of(fleet(MEASURED, CAMERA))
    decision = plan(LOW, from_pod((("far", "near"),), "video/camera-7"), snapshot)
    assert chosen(decision) == "near/n1"
    trace = decision.explanation.levels[0]
    assert trace.scores == {"near": -2.0, "far": -40.0}
    assert trace.notes["note 1"] == "source pod video/camera-7 runs on src/s1"
    # Inside the source cluster: the pod's own node when it fits, else the nearest.
    assert chosen(plan(LOW, from_pod((("src",),), "video/camera-7", cpu=1), snapshot)) == "src/s1"
    assert chosen(plan(LOW, from_pod((("src",),), "video/camera-7", cpu=3), snapshot)) == "src/s2"


def test_frompod_decides_what_fromnode_decides_on_the_pods_node() -> None:
    snapshot = snapshot_of(fleet(MEASURED, CAMERA))
    for levels in ((("far", "near", "unmeasured"),), (("src", "near"),), (("far",), ("near",))):
        by_pod = plan(LOW, from_pod(levels, "video/camera-7", cpu=3), snapshot)
        by_node = plan(LOW, low_latency(levels, cpu=3), snapshot)
        assert by_pod.placements == by_node.placements
        assert by_pod.explanation.levels[-1].scores == by_node.explanation.levels[-1].scores


def test_a_bare_pod_name_is_taken_in_the_request_namespace() -> None:
    snapshot = snapshot_of(fleet(MEASURED, CAMERA, pods("src", "s3", "p1-w1/camera-7")))
    in_video = from_pod((("src",),), "camera-7", cpu=1, namespace="video")
    assert chosen(plan(LOW, in_video, snapshot)) == "src/s1"
    # No namespace given: where gsch applies the project's workloads, <project>-<workspace>.
    in_project = from_pod((("src",),), "camera-7", cpu=1, project_name="p1", workspace_name="w1")
    decision = plan(LOW, in_project, snapshot)
    assert (
        "source pod p1-w1/camera-7 runs on src/s3" in decision.explanation.levels[0].notes.values()
    )


def test_an_unknown_pod_fails_every_level_with_the_reason() -> None:
    snapshot = snapshot_of(fleet(MEASURED, CAMERA))
    decision = plan(LOW, from_pod((("near", "far"), ("unmeasured",)), "video/camera-9"), snapshot)
    assert not decision.placed
    reason = "source pod video/camera-9 is not among the pods cluster src reported"
    assert [trace.rejections for trace in decision.explanation.levels] == [
        {"near": [reason], "far": [reason]},
        {"unmeasured": [reason]},
    ]
    assert reason in decision.explanation.summary


def test_the_newest_report_says_where_a_pod_runs() -> None:
    # Measured from s1 and from s2, so the node the pod runs on is its own nearest node.
    from_s2 = latency("src", "s2", {"src": 0.4}, {"s1": 0.3, "s2": 0.0, "s3": 0.6})
    moved = fleet(MEASURED, from_s2, CAMERA, pods("src", "s2", "video/camera-7"))
    wanted = from_pod((("src",),), "video/camera-7", cpu=1)
    # s2 reported it after s1 did: the pod moved, though s1 has not reported since.
    assert chosen(plan(LOW, wanted, snapshot_of(moved))) == "src/s2"
    # A later report of s1 that still lists it moves it back (newest report wins)...
    back = [*moved, pods("src", "s1", "video/camera-7")]
    assert chosen(plan(LOW, wanted, snapshot_of(back))) == "src/s1"
    # ... and a node's report replaces its list: gone from s1 and from s2, it is unknown.
    gone = [*back, pods("src", "s1"), pods("src", "s2")]
    assert not plan(LOW, wanted, snapshot_of(gone)).placed
    # A node that drops the pod does not remove it from the node that reported it since.
    kept = [*moved, pods("src", "s1", "video/other")]
    assert chosen(plan(LOW, wanted, snapshot_of(kept))) == "src/s2"


def at(event: AnyEvent, when: float) -> AnyEvent:
    return msgspec.structs.replace(event, at=when)


def test_a_stale_report_ranks_nothing_and_the_explanation_says_so() -> None:
    rules = PlannerRules(max_latency_age=300)
    fresh = [*fleet(at(MEASURED, 1000)), at(cluster("later"), 1250)]
    decision = plan(LOW, low_latency((("far", "near"),)), snapshot_of(fresh), rules)
    assert chosen(decision) == "near/n1"  # 250 s old: still ranks
    stale = [*fleet(at(MEASURED, 1000)), at(cluster("later"), 1301)]
    decision = plan(LOW, low_latency((("near", "far"),)), snapshot_of(stale), rules)
    trace = decision.explanation.levels[0]
    assert trace.scores == {}
    assert trace.notes["note 1"] == (
        "latency from src/s1 is 301 s older than the newest cluster event (limit 300 s):"
        " treated as unmeasured"
    )
    assert "no latency measured" in trace.notes["far"]
    # Unmeasured clusters tie: either may win (a hash of request and cluster decides).
    assert chosen(decision) in {"far/f1", "near/n1"}
    # Without a limit, age does not matter.
    assert chosen(plan(LOW, low_latency((("far", "near"),)), snapshot_of(stale))) == "near/n1"


def test_explanations_name_the_latency_ranking_and_the_node_scorer() -> None:
    decision = plan(
        LOW, low_latency((("far", "near", "src"),), cpu=3), snapshot_of(fleet(MEASURED))
    )
    by_plugin = decision.explanation.levels[0].plugin_scores
    assert by_plugin["latency from src/s1 (ms)"] == {"src": 0.4, "near": 2.0, "far": 40.0}
    nearest = "nearest node to src/s1 (-ms x 100)"
    assert by_plugin[nearest] == {"src/s2": -30.0}  # 0.3 ms, in points
    # Nodes of other clusters have no node-to-node latency: they are shown in their own
    # tier, by free capacity, not as the internal offset that ranks them below measured ones.
    unmeasured = by_plugin[f"{nearest}, unmeasured nodes by free capacity (GEdge)"]
    assert set(unmeasured) == {"near/n1", "far/f1"}
    assert all(0 <= score <= 200 for score in unmeasured.values())
