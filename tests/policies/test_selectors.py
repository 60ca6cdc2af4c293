"""Levels that name clusters by label selector: "near edge first, then edge, then cloud"."""

from __future__ import annotations

import json

import pytest

from gsch.model.events import AnyEvent, ClusterDeclared, LatencyReported
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import Policy, Request, Source
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS
from tests.support.planning import chosen, node, request, searching_from, snapshot_of

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


# --- large levels are searched: what the explanation says about the clusters left out -------


def loaded_fleet(count: int) -> list[AnyEvent]:
    """`count` near-edge clusters, one 8-cpu node each, more loaded the later the name, and
    latencies from near000's node that grow with the name too."""
    events: list[AnyEvent] = []
    for index in range(count):
        name = f"near{index:03d}"
        labels = {"tier": "near-edge"}
        events.append(ClusterDeclared(at=0, cluster=name, tier="near-edge", labels=labels))
        events.append(node(name, f"{name}-w", cpu=8, used_cpu=index * 7 / count))
    rtts = {f"near{index:03d}": 1.0 + index for index in range(count)}
    events.append(LatencyReported(at=0, cluster="near000", node="near000-w", to_clusters=rtts))
    return events


@pytest.mark.parametrize("policy", [Policy.MOST_REQUESTED, Policy.LEAST_REQUESTED,
                                    Policy.BIN_PACK, Policy.BALANCED])  # fmt: skip
def test_a_best_first_search_says_what_it_did_not_visit_and_why(policy: Policy) -> None:
    snapshot = snapshot_of(loaded_fleet(200))
    wanted = request((("tier=near-edge",),), policy=policy)
    searched = plan(PROFILES[policy], wanted, snapshot).explanation.levels[0]
    scanned = plan(searching_from(PROFILES[policy], 10**9), wanted, snapshot)
    assert f"{searched.chosen}" == chosen(scanned)
    note = searched.notes["not visited"]
    skipped = int(note.split(" ")[0])
    assert 0 < skipped < 200
    # The bound it states holds for every cluster it left out (the scan scored them all).
    stated = float(note.split("scores above ")[1].split(",")[0])
    winner = searched.chosen.split("/")[0]
    visited = set(searched.rejections) | set(searched.scores)
    others = scanned.explanation.levels[0].scores
    assert len([n for n in others if n not in visited]) == skipped
    assert all(score <= stated + 1e-3 for n, score in others.items() if n not in visited)
    assert f"{winner} scores " in note


def test_a_walk_in_listed_or_latency_order_says_how_many_clusters_it_left() -> None:
    snapshot = snapshot_of(loaded_fleet(200))
    listed = request((("tier=near-edge",),), policy=Policy.SELECTED_CLUSTER, mode="cluster")
    trace = plan(PROFILES[Policy.SELECTED_CLUSTER], listed, snapshot).explanation.levels[0]
    assert trace.chosen == "near000/near000-w"
    assert trace.notes["not visited"] == (
        "199 cluster(s) after near000 (the first listed cluster that fits wins)"
    )
    nearest = request(
        (("tier=near-edge",),), cpu=4, policy=Policy.LOW_LATENCY, mode="fromnode",
        source=Source("near000", "near000-w"),
    )  # fmt: skip
    trace = plan(PROFILES[Policy.LOW_LATENCY], nearest, snapshot).explanation.levels[0]
    # Nearest first: near000 has room for 4 cpus, 4 of the rest too (ranked after it).
    assert trace.chosen == "near000/near000-w"
    assert trace.scores == {"near000": -1.0}
    assert trace.notes["not visited"].startswith("199 cluster(s) after near000 (ranked after")


def test_a_large_set_stops_at_the_first_cluster_that_cannot_take_its_copy() -> None:
    snapshot = snapshot_of(loaded_fleet(200))
    wanted = request((("tier=near-edge",),), cpu=2, policy=Policy.SET_CLUSTERS)
    decision = plan(PROFILES[Policy.SET_CLUSTERS], wanted, snapshot)
    assert not decision.placed
    trace = decision.explanation.levels[0]
    # near172 is the first with less than 2 cpus free (used 172 x 7 / 200 = 6.02 of 8).
    assert list(trace.rejections) == ["near172"]
    assert trace.notes["not visited"] == (
        "27 cluster(s): near172 cannot take its copy, which fails the set"
    )
    assert decision.waits_for_capacity
