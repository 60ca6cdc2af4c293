"""Every field has a bound, checked at intake with a specific reason; what a reason repeats
of a bad value is bounded; and a request at every limit at once still has events that each
fit in one message of the log."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.store import DEFAULT_MAX_PAYLOAD, HEADER_ROOM
from gsch.model.digest import body_digest
from gsch.model.events import (
    Explanation,
    LevelTrace,
    RequestAccepted,
    RequestFailed,
    RequestRejected,
    encode_event,
)
from gsch.model.intake import IntakeRules
from gsch.model.limits import MAX_EXPLANATION_BYTES, CountLimits, fit_explanation
from gsch.model.request import QueueLevel, Request
from gsch.model.retry import RetryPolicy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS
from tests.support.intake import native, pod, rejected

MAX_EVENT = DEFAULT_MAX_PAYLOAD - HEADER_ROOM
HUGE = "x" * 250_000


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"select_clusters": [f"c{i}" for i in range(17)]}, "select_clusters",
         "has 17 levels, at most 16"),
        ({"select_clusters": [[f"c{i}" for i in range(129)]]}, "select_clusters[0]",
         "has 129 clusters, at most 128 per level"),
        ({"select_clusters": [[f"c{i}-{j}" for j in range(100)] for i in range(3)]},
         "select_clusters", "names 300 clusters in all, at most 256"),
        ({"select_clusters": "[" + ",".join(f"c{i}" for i in range(3000)) + "]"},
         "select_clusters", "has 3000 levels, at most 16"),
        ({"select_clusters": ["tier=" + "a" * 600]}, "select_clusters[0]",
         "an entry is 605 characters long, at most 512"),
        ({"user_name": "u" * 254}, "user_name", "is 254 characters long, at most 253"),
        ({"workspace_name": "w" * 64}, "workspace_name", "is 64 characters long, at most 63"),
        ({"project_name": "p" * 60_000}, "project_name", "is 60000 characters long, at most 63"),
        ({"namespace": "n" * 64}, "namespace", "is 64 characters long, at most 63"),
        ({"project_name": ""}, "project_name", "must not be empty"),
        ({"workload": [pod(f"p{i}") for i in range(33)]}, "workload",
         "has 33 documents, at most 32"),
    ],
)  # fmt: skip
def test_each_limit_is_checked_with_a_specific_reason(
    fields: dict[str, Any], field: str, problem: str
) -> None:
    rejection = rejected(native(**fields))
    assert (rejection.field, rejection.problem) == (field, problem)


@pytest.mark.parametrize("value", ["u\x1b[31mred", "a\u202eevil", "zero\u200bwidth", "nul\x00"])
def test_names_with_control_or_format_characters_are_refused(value: str) -> None:
    rejection = rejected(native(user_name=value))
    assert rejection.field == "user_name"
    assert "control or format characters" in rejection.problem


def test_source_names_are_checked() -> None:
    body = native(policy="GLowLatencyPriority", source={"cluster": "c1", "node": "N" * 300})
    rejection = rejected(body)
    assert rejection.field == "source.node"
    assert "is not a valid name" in rejection.problem


@pytest.mark.parametrize(
    "body",
    [
        native(policy=HUGE),
        native(mode=HUGE),
        native(request_id=HUGE),
        native(select_clusters=[HUGE.upper()]),
        {**native(), HUGE: 1},  # an unknown field: its name is the sender's text
        native(workload={**pod(), "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": HUGE}}}]}}),
    ],
)  # fmt: skip
def test_a_reason_never_repeats_more_than_a_little_of_a_huge_value(body: dict[str, Any]) -> None:
    """250 KB values used to be echoed whole in reasons: one listing page became 25 MB."""
    rules = IntakeRules(max_request_bytes=1 << 20, allowed_kinds=frozenset(DEFAULT_ALLOWED_KINDS))
    rejection = rejected(body, rules)
    assert len(rejection.field) <= 300
    assert len(rejection.reason) <= 800, rejection.reason[:200]
    event = RequestRejected(
        at=1.0, request_id=rejection.request_id, reason=rejection.reason, field=rejection.field,
        excerpt="x" * 512,
    )  # fmt: skip
    assert len(encode_event(event)) < 4096


def _widest_request() -> Request:
    """Every count at its limit, every name at its longest."""
    limits = CountLimits()
    per_level = limits.max_clusters // limits.max_levels
    name = "c" * 250
    levels = [
        [f"{name}{level:02d}{i:x}"[-253:] for i in range(per_level)]
        for level in range(limits.max_levels)
    ]
    # The namespace at its longest (63) must be one the project owns: `<project>-<workspace>`.
    project, workspace = "p" * 31, "w" * 31
    body = native(
        select_clusters=levels, user_name="u" * 253, workspace_name=workspace,
        project_name=project, namespace=f"{project}-{workspace}",
    )  # fmt: skip
    padding = 262_144 - len(json.dumps(body)) - 200
    body["workload"]["metadata"]["annotations"] = {"note": "z" * padding}
    data = json.dumps(body).encode()
    assert len(data) <= 262_144
    rules = IntakeRules(max_request_bytes=262_144, allowed_kinds=frozenset(DEFAULT_ALLOWED_KINDS))
    from gsch.model.intake import decode_request

    request = decode_request(data, rules, "fallback")
    assert isinstance(request, Request), request
    return request


def test_a_request_at_every_limit_has_events_that_each_fit_in_one_message() -> None:
    """The explanation of a request with many levels used to exceed the server's 1 MiB: the
    append failed and the request never settled."""
    request = _widest_request()
    accepted = RequestAccepted(at=1.0, request=request, intake_seq=1, level=QueueLevel.BASE)
    assert len(encode_event(accepted)) <= MAX_EVENT
    # Nothing in the fleet: every cluster of every level is rejected, and explained.
    decision = plan(PROFILES[request.policy], request, ClusterSnapshot(), PlannerRules())
    explanation = fit_explanation(decision.explanation)
    retry = RetryPolicy(first_after_failures=2, max_failures=5, backoff_base=1, backoff_max=1)
    reasons: list[str] = []
    outcome = None
    for attempt in range(1, 7):
        outcome = retry.after_failure(
            attempt, f"unschedulable: {explanation.summary}", reasons, 1.0, explanation
        )
        assert len(encode_event(outcome)) <= MAX_EVENT
        reasons.append(f"attempt {attempt}: {explanation.summary}")
    assert isinstance(outcome, RequestFailed)


def test_an_explanation_too_large_to_record_is_shortened() -> None:
    names = [f"cluster-{i:05d}" for i in range(20_000)]
    trace = LevelTrace(
        index=0, candidates=tuple(names), scores={n: float(i) for i, n in enumerate(names)},
        rejections={n: ["insufficient cpu"] for n in names},
    )  # fmt: skip
    big = Explanation((trace,), "no level could place the request")
    assert len(msgspec.json.encode(big)) > MAX_EXPLANATION_BYTES
    shortened = fit_explanation(big)
    assert len(msgspec.json.encode(shortened)) <= MAX_EXPLANATION_BYTES
    (kept,) = shortened.levels
    assert len(kept.candidates) == 64
    assert max(kept.scores.values()) == 19_999.0  # the best scores are the ones kept
    assert "shortened" in shortened.summary
    small = Explanation((LevelTrace(index=0, candidates=("c1",)),), "placed")
    assert fit_explanation(small) is small


def test_the_digest_of_a_body_is_its_meaning_not_its_spelling() -> None:
    one = b'{"request_id": "r1", "policy": "P", "workload": {"a": 1, "b": [1, 2]}}'
    same = b'{"workload":{"b":[1,2],"a":1},"policy":"P","request_id":"r1"}'
    other = b'{"request_id": "r1", "policy": "P", "workload": {"a": 2, "b": [1, 2]}}'
    assert body_digest(one) == body_digest(same)
    assert body_digest(one) != body_digest(other)
    assert body_digest(b"\x00 not json") != body_digest(b"\x01 not json")
    assert body_digest(b"[" * 100_000) == body_digest(b"[" * 100_000)  # too deep: by bytes
