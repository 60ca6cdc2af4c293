"""Filters: required node affinity (as read at intake), the project's allowed clusters, GPU and
pod-slot fit, and the level-wide count of what the node filters rejected."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsch.model.affinity import NodeRequirement, Terms
from gsch.model.events import AnyEvent
from gsch.model.intake import Rejection
from gsch.model.request import Policy, Request
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules, ProjectClusters
from tests.support.intake import accepted, native, pod, rejected
from tests.support.planning import (
    chosen,
    cluster,
    feasible,
    feasible_nodes,
    node,
    request,
    requests_for,
    snapshot_of,
    topologies,
)

MOST = PROFILES[Policy.MOST_REQUESTED]
ZONE_EVENTS: list[AnyEvent] = [
    cluster("c1"),
    node("c1", "a1", labels={"zone": "a", "gen": "3"}),
    node("c1", "b1", labels={"zone": "b", "gen": "5"}),
    node("c1", "c1", labels={"gen": "7"}),
]
ZONES = snapshot_of(ZONE_EVENTS)


def with_affinity(*terms: dict[str, Any]) -> Request:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }
    read = accepted(native(select_clusters=["c1"], workload=pod(affinity=affinity)))
    return request((("c1",),), node_affinity=read.node_affinity)


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


def placeable(wanted: Request) -> set[str]:
    """Every node the request can go to, found by taking each chosen one out in turn."""
    snapshot = snapshot_of(ZONE_EVENTS)
    found = set()
    while (where := chosen(plan(MOST, wanted, snapshot))) is not None:
        name = where.split("/")[1]
        found.add(name)
        snapshot.clusters["c1"].nodes[name].ready = False
    return found


@pytest.mark.parametrize(
    ("terms", "nodes"),
    [
        ([{"matchExpressions": [expression("zone", "In", "a", "b")]}], {"a1", "b1"}),
        ([{"matchExpressions": [expression("zone", "NotIn", "a")]}], {"b1", "c1"}),
        ([{"matchExpressions": [expression("zone", "Exists")]}], {"a1", "b1"}),
        ([{"matchExpressions": [expression("zone", "DoesNotExist")]}], {"c1"}),
        ([{"matchExpressions": [expression("gen", "Gt", "4")]}], {"b1", "c1"}),
        ([{"matchExpressions": [expression("gen", "Lt", "4")]}], {"a1"}),
        # Requirements of one term are ANDed, terms are ORed.
        (
            [
                {"matchExpressions": [expression("zone", "Exists"), expression("gen", "Gt", "4")]},
                {"matchFields": [expression("metadata.name", "In", "a1")]},
            ],
            {"a1", "b1"},
        ),
        ([{}], set()),  # an empty term matches nothing
    ],
)
def test_required_node_affinity(terms: list[dict[str, Any]], nodes: set[str]) -> None:
    assert placeable(with_affinity(*terms)) == nodes


def test_affinity_rejections_are_explained() -> None:
    wanted = with_affinity({"matchExpressions": [expression("zone", "In", "z")]})
    decision = plan(MOST, wanted, ZONES)
    assert decision.explanation.levels[0].rejections == {
        "c1": ["3/3 nodes: required node affinity does not match"]
    }


@pytest.mark.parametrize(
    ("terms", "field", "problem"),
    [
        ([], "nodeSelectorTerms", "must be a non-empty list"),
        ([{"matchExpressions": [expression("k", "Near", "x")]}], "operator", "must be one of"),
        ([{"matchExpressions": [expression("k", "Gt", "x")]}], "values", "exactly one integer"),
        ([{"matchExpressions": [{"operator": "Exists"}]}], "key", "is required"),
    ],
)
def test_malformed_affinity_is_rejected_by_field(
    terms: list[Any], field: str, problem: str
) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }
    result = rejected(native(workload=pod(affinity=affinity)))
    assert isinstance(result, Rejection)
    assert result.field.startswith("workload[0].affinity.nodeAffinity")
    assert result.field.endswith(field)
    assert problem in result.reason


PROJECTS = PlannerRules(
    projects={"p1": ProjectClusters.of(["c1"], ["tier=edge&region=kr"])},
)


def test_a_project_places_only_on_its_clusters() -> None:
    snapshot = snapshot_of(
        [
            cluster("c1"),
            node("c1", "n", cpu=1, used_cpu=0.5),  # allowed, but half used
            cluster("c2"),  # tier=edge, but no region label
            node("c2", "n", cpu=64),
            *[
                event
                for name in ("kr1", "us1")
                for event in (
                    msgspec_replace(cluster(name), labels={"tier": "edge", "region": name[:2]}),
                    node(name, "n", cpu=32),
                )
            ],
        ]
    )
    levels = (("c2", "us1", "kr1", "c1"),)
    wanted = request(levels, project_name="p1")
    decision = plan(MOST, wanted, snapshot, PROJECTS)
    assert chosen(decision) == "kr1/n"
    assert decision.explanation.levels[0].rejections == {
        "c2": ["not allowed for project p1"],
        "us1": ["not allowed for project p1"],
    }
    # No project named, or no projects configured: every cluster competes (c2, kr1 and us1
    # tie as empty; any of them may win).
    tied = {"c2/n", "kr1/n", "us1/n"}
    assert chosen(plan(MOST, request(levels), snapshot, PROJECTS)) in tied
    assert chosen(plan(MOST, wanted, snapshot)) in tied
    # A project the configuration does not list has no clusters.
    other = plan(MOST, request(levels, project_name="p2"), snapshot, PROJECTS)
    assert not other.placed
    assert set(other.explanation.levels[0].rejections) == set(levels[0])


def msgspec_replace(event: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(event, **changes)


def test_gpu_and_pod_slots_must_fit_and_counts_cover_the_level() -> None:
    snapshot = snapshot_of(
        [
            cluster("c1"),
            node("c1", "cpu-only"),
            node("c1", "one-gpu", gpu=1),
            node("c1", "full-pods", gpu=2, pods=0),
            cluster("c2"),
            node("c2", "cpu-only"),
            node("c2", "down", gpu=4, ready=False),
        ]
    )
    decision = plan(MOST, request((("c1", "c2"),), gpu=2), snapshot)
    assert not decision.placed
    (trace,) = decision.explanation.levels
    assert trace.rejections == {
        "c1": ["2/3 nodes: insufficient nvidia.com/gpu", "1/3 nodes: insufficient pods"],
        "c2": ["1/2 nodes: insufficient nvidia.com/gpu", "1/2 nodes: node not ready"],
    }
    assert trace.filtered == {
        "insufficient nvidia.com/gpu": "3/5 nodes",
        "insufficient pods": "1/5 nodes",
        "node not ready": "1/5 nodes",
    }
    assert chosen(plan(MOST, request((("c1", "c2"),), gpu=1), snapshot)) == "c1/one-gpu"


# --- property: the chosen node passes affinity and project filters -------------------------

ZONE_TERMS = [
    (),
    ((NodeRequirement("zone", "In", ("a",)),),),
    ((NodeRequirement("disk", "NotIn", ("hdd",)),), (NodeRequirement("zone", "Exists"),)),
]


def affinity_holds(terms: Terms, labels: dict[str, str]) -> bool:
    """The model: only In / NotIn / Exists on labels, as ZONE_TERMS uses them."""

    def holds(r: NodeRequirement) -> bool:
        value = labels.get(r.key)
        if r.operator == "In":
            return value in r.values
        if r.operator == "NotIn":
            return value not in r.values
        return value is not None

    return not terms or any(all(holds(r) for r in term) for term in terms)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_a_chosen_node_passes_affinity_and_project_filters(data: st.DataObject) -> None:
    topology = data.draw(topologies())
    plain = data.draw(requests_for(topology, Policy.MOST_REQUESTED))
    terms = data.draw(st.sampled_from(ZONE_TERMS))
    allowed = data.draw(st.sets(st.sampled_from(["c1", "c2", "c3", "c4", "c5"])))
    rules = PlannerRules(projects={"p1": ProjectClusters(frozenset(allowed))})
    wanted = msgspec.structs.replace(plain, node_affinity=terms, project_name="p1")
    decision = plan(MOST, wanted, snapshot_of(topology.events), rules)
    eligible = [
        (name, m)
        for level in wanted.levels[: decision.level_index + 1 if decision.placed else None]
        for name in level
        if name in allowed
        for m in feasible_nodes(topology, wanted, name)
        if affinity_holds(terms, m.labels)
    ]
    if not decision.placed:
        assert eligible == []
        return
    (placement,) = decision.placements
    assert placement.cluster in allowed
    model = next(m for m in topology.nodes[placement.cluster] if m.name == placement.node)
    assert feasible(wanted, model)
    assert affinity_holds(terms, model.labels)
    # Levels are respected: no earlier level had an eligible node.
    earlier = {name for level in wanted.levels[: decision.level_index] for name in level}
    assert not [name for name, _ in eligible if name in earlier]
