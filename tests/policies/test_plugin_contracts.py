"""The framework's contracts with its plugins: a filter's code (not its text) decides whether a
request waits for capacity; score plugins of different ranges are normalised before they are
weighed; a tiered score ranks every measured node above every unmeasured one."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from gsch.clusters.snapshot import NodeView
from gsch.model.events import Taint
from gsch.model.request import Policy, Request
from gsch.policies.filters import node_ready, resource_fit, untolerated_taint
from gsch.policies.framework import (
    Code,
    NodeFilter,
    Profile,
    Scale,
    ScorePlugin,
    Status,
    combined,
    plan,
    plan_avoiding,
    tiered,
)
from gsch.policies.registry import PROFILES
from gsch.policies.rules import DEFAULT_RULES
from gsch.policies.strategies import RankedByScore
from tests.support.planning import chosen, cluster, node, request, snapshot_of

MOST = PROFILES[Policy.MOST_REQUESTED]


def refusing(code: Code, reason: str) -> NodeFilter:
    def refuse(request: Request, node: NodeView) -> Status:
        return Status(code, reason, "TestFilter")

    return refuse


@pytest.mark.parametrize(
    ("code", "reason", "waits"),
    [
        # Reworded either way: the code decides, the text only explains.
        (Code.UNSCHEDULABLE, "no room for you today", True),
        (Code.UNRESOLVABLE, "insufficient cpu", False),
        (Code.UNRESOLVABLE, "node not ready", False),
    ],
)
def test_the_code_not_the_text_decides_whether_a_request_waits(
    code: Code, reason: str, waits: bool
) -> None:
    profile = dataclasses.replace(MOST, node_filters=(refusing(code, reason),))
    snapshot = snapshot_of([cluster("c1"), node("c1", "n1")])
    decision = plan(profile, request((("c1",),)), snapshot)
    assert not decision.placed
    assert decision.explanation.levels[0].rejections == {"c1": [f"1/1 nodes: {reason}"]}
    assert decision.waits_for_capacity is waits
    # plan_avoiding reports the same (it re-plans the whole request when avoiding fails).
    avoiding = plan_avoiding(profile, request((("c1",),)), snapshot, DEFAULT_RULES, ("c1",))
    assert avoiding.waits_for_capacity is waits


def test_one_unschedulable_cluster_among_unresolvable_ones_makes_the_request_wait() -> None:
    snapshot = snapshot_of(
        [
            cluster("tainted"),
            node("tainted", "t", taints=(Taint("maint", "NoSchedule"),)),
            cluster("small"),
            node("small", "s", cpu=1),
        ]
    )
    alone = plan(MOST, request((("tainted",),), cpu=2), snapshot)
    assert not alone.waits_for_capacity
    both = plan(MOST, request((("tainted",), ("small",)), cpu=2), snapshot)
    assert both.waits_for_capacity


def test_the_shared_filters_say_which_code_they_mean() -> None:
    wanted = request((("c1",),), cpu=2)
    small = NodeView("c1", "n", ready=True, declared=True)  # nothing allocatable
    down = NodeView("c1", "n", ready=False, declared=True)
    tainted = NodeView("c1", "n", ready=True, declared=True, taints=(Taint("x", "NoSchedule"),))
    assert resource_fit(wanted, small) == Status(
        Code.UNSCHEDULABLE, "insufficient cpu, memory, pods", "NodeResourcesFit"
    )
    assert node_ready(wanted, down) == Status(Code.UNSCHEDULABLE, "node not ready", "NodeReady")
    assert untolerated_taint(wanted, tainted) == Status(
        Code.UNRESOLVABLE, "untolerated taint x:NoSchedule", "TaintToleration"
    )


# --- scores ---------------------------------------------------------------------------------


def by_name(scores: dict[str, float]) -> ScorePlugin:
    def score(request: Request, node: NodeView) -> float:
        return scores[node.name]

    return ScorePlugin("by name", score)


def test_a_scale_maps_onto_0_to_100_and_clamps() -> None:
    scale = Scale(-50.0, 150.0)
    assert [scale.normalised(x) for x in (-80, -50, 50, 150, 900)] == [0, 0, 50, 100, 100]


def test_plugins_of_different_ranges_are_normalised_before_they_are_weighed() -> None:
    # "wide" scores 0..1000, "narrow" 0..10. Raw, "wide" would decide everything.
    wide = dataclasses.replace(by_name({"a": 900, "b": 500}), name="wide", scale=Scale(0, 1000))
    narrow = dataclasses.replace(by_name({"a": 0, "b": 10}), name="narrow", scale=Scale(0, 10))
    snapshot = snapshot_of([cluster("c1"), node("c1", "a"), node("c1", "b")])
    wanted = request((("c1",),))
    a, b = snapshot.clusters["c1"].nodes["a"], snapshot.clusters["c1"].nodes["b"]

    def profile(*plugins: ScorePlugin) -> Profile:
        return dataclasses.replace(MOST, scorers=plugins, strategy=RankedByScore())

    equal = profile(wide, narrow)
    # a: 90 + 0; b: 50 + 100.
    assert (equal.node_scorer(wanted, a), equal.node_scorer(wanted, b)) == (90.0, 150.0)
    assert chosen(plan(equal, wanted, snapshot)) == "c1/b"
    # Weighed: a: 90 + 0; b: 50 + 0.25 x 100 = 75.
    weighed = profile(wide, dataclasses.replace(narrow, weight=0.25))
    assert chosen(plan(weighed, wanted, snapshot)) == "c1/a"
    assert plan(weighed, wanted, snapshot).explanation.levels[0].scores == {"c1": 90.0}
    # The explanation shows each plugin's own score, by its label.
    by_plugin = plan(weighed, wanted, snapshot).explanation.levels[0].plugin_scores
    assert by_plugin == {"wide": {"c1/a": 900.0}, "narrow x0.25": {"c1/a": 0.0}}


def test_a_plugin_alone_is_compared_in_its_own_points() -> None:
    # 150.4 and 150.6 are different whole points (150, 151) in the plugin's own units; mapped
    # onto 0..100 they would both round to 75 and tie.
    wide = dataclasses.replace(by_name({"a": 150.6, "b": 150.4}), scale=Scale(0, 200))
    assert combined((wide,)) is wide.score
    profile = dataclasses.replace(MOST, scorers=(wide,), strategy=RankedByScore())
    snapshot = snapshot_of([cluster("c1"), node("c1", "a"), node("c1", "b")])
    for index in range(20):  # the tie hash would send some requests to "b"
        wanted = msgspec.structs.replace(request((("c1",),)), request_id=f"r{index}")
        assert chosen(plan(profile, wanted, snapshot)) == "c1/a"


def test_a_tiered_score_ranks_measured_nodes_first() -> None:
    measured = {"near": -300.0, "far": -4000.0}

    def latency(request: Request, node: NodeView) -> float | None:
        return measured.get(node.name)

    def free(request: Request, node: NodeView) -> float:
        return {"roomy": 200.0, "cramped": 10.0}.get(node.name, 0.0)

    score = tiered(latency, free)
    wanted = request((("c1",),))
    ordered = sorted(
        ("cramped", "far", "roomy", "near"),
        key=lambda name: -score(wanted, NodeView("c1", name)),
    )
    assert ordered == ["near", "far", "roomy", "cramped"]


def test_registry_profiles_are_built_from_strategies() -> None:
    assert PROFILES[Policy.SET_CLUSTERS].strategy.level_is_a_set
    assert not MOST.strategy.level_is_a_set
    assert PROFILES[Policy.SELECTED_CLUSTER].strategy.keeps_listed_order
    # Bound search where the plugins have a bound (every score ranking policy); none where
    # some plugin has not.
    snapshot = snapshot_of([cluster("c1")])
    wanted = request((("c1",),))
    for policy in (Policy.MOST_REQUESTED, Policy.BIN_PACK, Policy.LEAST_REQUESTED, Policy.BALANCED):
        assert PROFILES[policy].pre_score(wanted, snapshot, DEFAULT_RULES).search is not None
    unbounded = dataclasses.replace(
        MOST, scorers=(*MOST.scorers, ScorePlugin("no bound", lambda request, node: 0.0))
    )
    assert unbounded.pre_score(wanted, snapshot, DEFAULT_RULES).search is None
