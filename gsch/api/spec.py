"""The route table, and the OpenAPI 3.1 document generated from it.

One `Operation` per route declares its handler, the msgspec type of its answer, its
parameters and whether it writes. The router, the token check and `/openapi.json` are all
built from the same table, and the schemas come from the very types that encode the answers
(`msgspec.json.schema_components`), so the document cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from gsch import __version__
from gsch.api.http import JSON, SEQUENCE_HEADER, STALE_HEADER, ErrorBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SSE = "text/event-stream"
TEXT = "text/plain"
REF = "#/components/schemas/{name}"
_REASONS = {
    304: "Not modified since the ETag given in If-None-Match",
    400: "Invalid parameter or body",
    401: "Missing or wrong bearer token",
    403: "Disabled: no token is configured for this operation",
    404: "No such resource",
    409: "Conflict: the request id belongs to another request, or the resource kept"
    " changing while the request was carried out (try again)",
    410: "Gone: the continue token has expired, or the request was removed by retention",
    413: "Request body too large",
    422: "The request would be rejected",
    503: "The read model is not available yet, the event log is unreachable, or the planner"
    " is busy (see Retry-After)",
}
# Every route may answer these: unknown parameters, and the read model not being open yet.
_COMMON_ERRORS = (400, 503)


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    location: str = "query"

    def openapi(self) -> dict[str, Any]:
        found = {
            "name": self.name,
            "in": self.location,
            "required": self.location == "path",
            "description": self.description,
            "schema": self.schema,
        }
        if self.location == "query" and self.schema.get("type") == "array":
            found |= {"style": "form", "explode": True}  # `?a=x&a=y`; `a=x,y` works too
        return found


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    response: Any = None  # a msgspec type; None: not JSON (see `media_type`)
    params: tuple[Param, ...] = ()
    body: Any = None  # a msgspec type describing the request body
    writes: bool = False  # needs the write token
    plans: bool = False  # needs the plan token or the write token
    reads: bool = True  # needs the read token when reads are protected
    status: int = 200
    media_type: str = JSON
    errors: tuple[int, ...] = ()
    answers: tuple[tuple[int, Any], ...] = ()  # statuses whose body is not an ErrorBody


MIN_SEQ = Param(
    "min_seq",
    {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "Answer once the read model has applied this stream sequence (read your writes). After"
    f" the API's max_wait the current answer comes, flagged with {STALE_HEADER}: true.",
)


def register(
    router: web.UrlDispatcher, operations: Iterable[Operation]
) -> dict[web.AbstractRoute, Operation]:
    """Add every operation to `router`; the routes with what they declared."""
    return {router.add_route(op.method, op.path, op.handler): op for op in operations}


def openapi(operations: Iterable[Operation], *, auth: bool) -> dict[str, Any]:
    """The document for `operations`; `auth`: reads need a token too."""
    operations = list(operations)
    types: list[Any] = [ErrorBody]
    for op in operations:
        types.extend(t for t in (op.response, op.body) if t is not None)
        types.extend(kind for _, kind in op.answers)
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, auth)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gsch API",
            "version": __version__,
            "description": "Read model of the gsch global scheduler. Every answer carries"
            f" the event stream sequence it reflects ({SEQUENCE_HEADER}, and `sequence` in"
            " JSON bodies).",
            "license": {"name": "Apache License 2.0", "identifier": "Apache-2.0"},
        },
        # Wherever an operator runs it: paths are relative to the address this document was
        # fetched from (`api.listen`, or the proxy in front of it).
        "servers": [{"url": "/", "description": "The gsch API serving this document"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(op: Operation, auth: bool) -> dict[str, Any]:
    sequence = {
        "description": "The event stream sequence the answer reflects",
        "schema": {"type": "integer", "minimum": 0},
    }
    headers: dict[str, Any] = {SEQUENCE_HEADER: sequence}
    ok: dict[str, Any] = {"description": op.summary, "headers": headers}
    if op.response is not None:
        ok["content"] = {op.media_type: {"schema": _schema(op.response)}}
    elif op.media_type != JSON:
        ok["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    if op.method == "GET" and op.media_type == JSON:
        etag = {"description": "Identifies this answer", "schema": {"type": "string"}}
        ok["headers"] = {**headers, "ETag": etag}
        responses["304"] = {"description": _REASONS[304], "headers": {"ETag": etag}}
    secured = op.writes or op.plans or (auth and op.reads)
    statuses = {*_COMMON_ERRORS, *op.errors}
    if secured:
        statuses |= {401, 403}
    if op.body is not None:
        statuses.add(413)
    bodies: dict[int, Any] = dict.fromkeys(statuses, ErrorBody) | dict(op.answers)
    for status, kind in sorted(bodies.items()):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "headers": headers,
            "content": {JSON: {"schema": _schema(kind)}},
        }
    operation_id = f"{op.method.lower()}{op.path}"
    for char in "/{}.":
        operation_id = operation_id.replace(char, "_")
    result: dict[str, Any] = {
        "summary": op.summary,
        "operationId": operation_id.strip("_"),
        "parameters": [p.openapi() for p in op.params],
        "responses": responses,
    }
    if op.body is not None:
        result["requestBody"] = {"required": True, "content": {JSON: {"schema": _schema(op.body)}}}
    # Stated on every operation, open ones too (`[]`: no credentials), so a client generated
    # from the document knows which calls need the token.
    result["security"] = [{"bearer": []}] if secured else []
    return result


def _schema(kind: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([kind], ref_template=REF)
    return dict(schema)
