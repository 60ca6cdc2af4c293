"""Schemathesis hooks for the live API run (loaded through SCHEMATHESIS_HOOKS): explicit cases
no generator would find. Bodies nested past msgspec's own recursion limit for every route
that takes a request, and `continue` tokens that are correctly signed (with the installation
secret named by GSCH_TEST_CONTINUE_SECRET) but carry a key or sequence of 2^63 or more."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import schemathesis

from gsch.api.cursor import Cursors, query_digest
from gsch.projections.queries import RequestFilter

DEEP = b"[" * 100_000 + b"]" * 100_000
BODIES = (
    DEEP,
    b'{"request_id": "st-deep", "workload": ' + DEEP + b"}",
    b'{"request_id": "st-deep", "workload": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
)
OUT_OF_RANGE = ((2**63, 0), (2**64 - 1, 0), (0, 2**63), (-1, -1))
REQUEST_ROUTES = ("/v1/requests", "/v1/plan")


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    operation = context.operation
    if operation is None:
        return
    method = operation.method.upper()
    if method == "POST" and operation.path in REQUEST_ROUTES:
        examples.extend(operation.Case(body=body, media_type="application/json") for body in BODIES)
    if method == "GET" and operation.path == "/v1/requests":
        secret = Path(os.environ["GSCH_TEST_CONTINUE_SECRET"]).read_text().strip().encode()
        cursors = Cursors(secret, window=1)
        query = query_digest(RequestFilter(), "oldest")  # that of a listing without filters
        examples.extend(
            operation.Case(query={"continue": cursors.issue(key, query, issued)})
            for key, issued in OUT_OF_RANGE
        )
