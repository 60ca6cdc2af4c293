"""Helpers for tests that feed request bodies through intake: one place for the rules, the
fallback id and the smallest valid native request, so every test decodes the same way."""

from __future__ import annotations

import json
from typing import Any

from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import Request
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS

RULES = IntakeRules(max_request_bytes=64 * 1024, allowed_kinds=frozenset(DEFAULT_ALLOWED_KINDS))
FALLBACK = "req-fallback"


def decode(body: Any, rules: IntakeRules = RULES) -> Request | Rejection:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode_request(data, rules, FALLBACK)


def accepted(body: Any, rules: IntakeRules = RULES) -> Request:
    result = decode(body, rules)
    assert isinstance(result, Request), result
    return result


def rejected(body: Any, rules: IntakeRules = RULES) -> Rejection:
    result = decode(body, rules)
    assert isinstance(result, Rejection), result
    return result


def pod(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def native(**fields: Any) -> dict[str, Any]:
    """A valid native request; a field given as None is left out."""
    body: dict[str, Any] = {
        "request_id": "req-1",
        "policy": "GMostRequestedPriority",
        "select_clusters": ["c1", ["c2", "c3"]],
        "workload": pod(),
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}
