"""GSetClusters: a copy on every cluster of a level, all or nothing, then the next level."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.events import AnyEvent
from gsch.model.intake import IntakeRules, decode_request
from gsch.model.request import Policy, Request
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS
from tests.support.planning import cluster, node, request, snapshot_of

SET = PROFILES[Policy.SET_CLUSTERS]


def fleet(free_cpu: dict[str, float]) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for name, cpu in free_cpu.items():
        events += [cluster(name), node(name, f"{name}-a", cpu=cpu), node(name, f"{name}-b", cpu=1)]
    return events


def test_a_copy_on_every_cluster_of_the_first_level_that_takes_all() -> None:
    snapshot = snapshot_of(fleet({"c1": 4, "c2": 4, "c3": 0.2, "c4": 4, "c5": 4}))
    wanted = request((("c1", "c2", "c3"), ("c4", "c5")), cpu=2, policy=Policy.SET_CLUSTERS)
    decision = plan(SET, wanted, snapshot)
    # c3 cannot take 2 cpu: level 1 places nothing at all; level 2 places on both.
    assert decision.level_index == 1
    assert {(p.cluster, p.node) for p in decision.placements} == {("c4", "c4-a"), ("c5", "c5-a")}
    assert all(p.amount == wanted.demand for p in decision.placements)
    assert "c3" in decision.explanation.levels[0].rejections


def test_a_flat_list_of_names_is_one_set() -> None:
    container = {"name": "c", "image": "x"}
    workload = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    workload["spec"] = {"containers": [container]}
    body = {"policy": "GSetClusters", "select_clusters": ["c1", "c2", "c3"], "workload": workload}
    rules = IntakeRules(262144, frozenset(DEFAULT_ALLOWED_KINDS))
    decoded = decode_request(json.dumps(body).encode(), rules, "id-1")
    assert isinstance(decoded, Request)
    assert decoded.levels == (("c1", "c2", "c3"),)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["c1", "c2", "c3", "c4"]), st.floats(0, 4), min_size=1))
def test_every_cluster_of_the_set_or_none(free_cpu: dict[str, float]) -> None:
    snapshot = snapshot_of(fleet(free_cpu))
    names = tuple(sorted(free_cpu))
    decision = plan(SET, request((names,), cpu=1.5, policy=Policy.SET_CLUSTERS), snapshot)
    placed = {p.cluster for p in decision.placements}
    assert placed in (set(), set(names))
    assert decision.placed == all(cpu >= 1.5 for cpu in free_cpu.values())
