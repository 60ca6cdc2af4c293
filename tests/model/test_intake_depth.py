"""The intake's nesting bound holds at its edge whether or not the body is walked: a JSON body
is walked only when its brackets allow it to nest past the bound."""

from __future__ import annotations

import json

import msgspec

from gsch.model.intake import MAX_NESTING, IntakeRules, Rejection, decode_request
from tests.support.intake import native, pod

RULES = IntakeRules(max_request_bytes=1 << 20, allowed_kinds=frozenset({"Pod"}))


def deep_request(lists: int) -> bytes:
    # The body, its workload and the pod's spec are depths 1-3; the lists start at depth 4.
    return msgspec.json.encode(native(workload=pod(deep=json.loads("[" * lists + "]" * lists))))


def test_one_level_past_the_bound_is_refused() -> None:
    decoded = decode_request(deep_request(MAX_NESTING - 2), RULES, "fallback")
    assert isinstance(decoded, Rejection)
    assert decoded.field == "body"
    assert f"more than {MAX_NESTING} levels" in decoded.problem


def test_at_the_bound_it_is_not_the_nesting_that_refuses() -> None:
    decoded = decode_request(deep_request(MAX_NESTING - 3), RULES, "fallback")
    assert not (isinstance(decoded, Rejection) and "nested" in decoded.problem)
