"""Levels that name clusters by label selector: "near edge first, then edge, then cloud"."""

from __future__ import annotations

import json

import pytest

from gsch.model.events import AnyEvent, ClusterDeclared
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import Policy, Request
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS
from tests.support.planning import chosen, node, request, snapshot_of

MOST = PROFILES[Policy.MOST_REQUESTED]
TIERED = (("tier=near-edge",), ("tier=edge",), ("tier=cloud",))


def tiered(**labels_of: dict[str, str]) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for name, labels in labels_of.items():
        events.append(ClusterDeclared(at=0, cluster=name, tier=labels["tier"], labels=labels))
        events.append(node(name, f"{name}-w", cpu=2))
    return events


FLEET = tiered(
    near1={"tier": "near-edge", "region": "kr"},
    near2={"tier": "near-edge", "region": "us"},
    edge1={"tier": "edge", "region": "kr"},
    cloud1={"tier": "cloud", "region": "kr"},
)


def test_tiers_in_order_with_the_tier_members_competing() -> None:
    decision = plan(MOST, request(TIERED), snapshot_of(FLEET))
    assert decision.level_index == 0
    assert chosen(decision) in ("near1/near1-w", "near2/near2-w")
    trace = decision.explanation.levels[0]
    assert trace.candidates == ("near1", "near2")
    assert trace.notes["tier=near-edge"] == "matched near1, near2"


def test_falls_back_a_tier_when_the_nearer_one_is_full() -> None:
    decision = plan(MOST, request(TIERED, cpu=3), snapshot_of(FLEET))
    assert not decision.placed  # 2-cpu nodes everywhere
    big = [*FLEET, node("cloud1", "cloud1-big", cpu=16)]
    decision = plan(MOST, request(TIERED, cpu=3), snapshot_of(big))
    assert chosen(decision) == "cloud1/cloud1-big"
    assert decision.level_index == 2


def test_requirements_joined_by_ampersand_must_all_hold() -> None:
    wanted = request((("tier=near-edge&region=us",),))
    assert chosen(plan(MOST, wanted, snapshot_of(FLEET))) == "near2/near2-w"


def test_a_selector_that_matches_nothing_is_explained() -> None:
    decision = plan(MOST, request((("tier=orbit",), ("edge1",))), snapshot_of(FLEET))
    assert chosen(decision) == "edge1/edge1-w"
    assert decision.explanation.levels[0].rejections == {
        "tier=orbit": ["label selector matched no cluster"]
    }


def test_a_cluster_that_joins_later_is_found_and_relabelling_moves_it() -> None:
    joined = [*FLEET, *tiered(near3={"tier": "near-edge", "region": "kr"})]
    trace = plan(MOST, request(TIERED), snapshot_of(joined)).explanation.levels[0]
    assert trace.candidates == ("near1", "near2", "near3")
    moved = [*joined, ClusterDeclared(at=0, cluster="near1", tier="edge", labels={"tier": "edge"})]
    trace = plan(MOST, request(TIERED), snapshot_of(moved)).explanation.levels[0]
    assert trace.candidates == ("near2", "near3")


RULES = IntakeRules(262144, frozenset(DEFAULT_ALLOWED_KINDS))
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
POD["spec"] = {"containers": [{"name": "c", "image": "x"}]}


def test_selectors_are_accepted_in_lists_and_in_bracket_notation() -> None:
    for levels in (
        [["tier=near-edge"], "tier=edge", "tier=cloud"],
        "[[tier=near-edge],tier=edge,tier=cloud]",
    ):
        body = {"policy": "GMostRequestedPriority", "select_clusters": levels, "workload": POD}
        decoded = decode_request(json.dumps(body).encode(), RULES, "r")
        assert isinstance(decoded, Request)
        assert decoded.levels == TIERED


@pytest.mark.parametrize("bad", ["=edge", "tier==edge", "tier=edge&", "ti er=x"])
def test_malformed_selectors_are_rejected_by_name(bad: str) -> None:
    body = {"policy": "GMostRequestedPriority", "select_clusters": [bad], "workload": POD}
    decoded = decode_request(json.dumps(body).encode(), RULES, "r")
    assert isinstance(decoded, Rejection)
    assert decoded.field == "select_clusters"
    assert bad in decoded.problem


def test_a_level_over_a_large_fleet_keeps_its_explanation_small() -> None:
    import msgspec

    fleet = tiered(**{f"near{i:04d}": {"tier": "near-edge"} for i in range(400)})
    decision = plan(MOST, request((("tier=near-edge",),), cpu=64), snapshot_of(fleet))
    # 2-cpu nodes everywhere: the first cluster's node is looked at (its rejection makes the
    # request wait for capacity); every other cluster is rejected on its aggregates alone.
    assert not decision.placed
    trace = decision.explanation.levels[0]
    assert trace.candidates == ("tier=near-edge",)
    assert len(trace.rejections) == 64
    assert trace.notes["more rejected"] == (
        "336 more clusters rejected: insufficient cpu on every ready node (336)"
    )
    assert trace.filtered == {"insufficient cpu": "1/1 nodes"}  # one node was looked at
    assert "matched 400:" in trace.notes["tier=near-edge"]
    assert len(msgspec.json.encode(decision.explanation)) < 16_000
