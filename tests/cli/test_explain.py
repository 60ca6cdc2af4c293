"""`gsch explain` / `gsch plan` text: what a person reads for a decision, from the API's JSON."""

from __future__ import annotations

import msgspec

from gsch.cli.explain import format_explanation
from gsch.model.events import Explanation, LevelTrace
from gsch.model.request import Policy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from tests.support.planning import cluster, node, request, snapshot_of


def as_api_json(explanation: Explanation) -> dict[str, object]:
    decoded: dict[str, object] = msgspec.json.decode(msgspec.json.encode(explanation))
    return decoded


def test_a_placed_request_shows_the_level_used_scores_per_plugin_and_filters() -> None:
    snapshot = snapshot_of(
        [
            cluster("c1"),
            node("c1", "a", cpu=4),
            node("c1", "b", cpu=1),
            cluster("c2"),
            node("c2", "x", cpu=1),
            cluster("c3"),
            node("c3", "y", cpu=8, used_cpu=2),
        ]
    )
    decision = plan(
        PROFILES[Policy.MOST_REQUESTED], request((("c2",), ("c1", "c3")), cpu=2), snapshot
    )
    text = format_explanation(as_api_json(decision.explanation))
    # c1/a: nothing used, (100 - 0) + (100 - 0); c3/y: 2 of 8 cpu used, 75 + 100; c1/b and
    # c2/x have 1 cpu for 2 wanted.
    assert text.splitlines() == [
        "level 1 [c2]: placed nothing",
        "  filtered: 1/1 nodes: insufficient cpu",
        "  c2: 1/1 nodes: insufficient cpu",
        "level 2 [c1, c3]: chose c1/a (level used)",
        "  scores: c1 200, c3 175",
        "  free capacity (GEdge): c1/a 200, c3/y 175",
        "  filtered: 1/3 nodes: insufficient cpu",
        "summary: level 2 of 2: c1/a (GMostRequestedPriority)",
    ]


def test_an_old_explanation_without_the_newer_fields_still_prints() -> None:
    old = {"levels": [{"index": 0, "candidates": ["c1"], "scores": {"c1": 150.0}}], "summary": "s"}
    assert format_explanation(old) == "level 1 [c1]: placed nothing\n  scores: c1 150\nsummary: s"
    # And an event recorded before the fields existed decodes with their defaults.
    decoded = msgspec.json.decode(msgspec.json.encode(old), type=Explanation)
    assert decoded.levels[0] == LevelTrace(index=0, candidates=("c1",), scores={"c1": 150.0})
    assert decoded.levels[0].plugin_scores == {}
    assert not decoded.levels[0].used


def test_nothing_recorded() -> None:
    assert format_explanation(None) == "no decision recorded yet"
