"""JSON plumbing shared by every route: encoding, the sequence header, errors."""

from __future__ import annotations

import msgspec
from aiohttp import web

SEQUENCE_HEADER = "X-Gsch-Sequence"
# Set on an answer that had to be given before the read model reached the `min_seq` asked for.
STALE_HEADER = "X-Gsch-Stale"
STALE = web.RequestKey("stale", int)  # on such a request: the min_seq it did not reach
JSON = "application/json"

_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    """An answer other than success, with a reason a person can act on."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.field = field  # the field of the request body that is wrong, when one is


def refusal_status(field: str) -> int:
    """A request a worker would reject: 400 when the body is no request at all (not JSON, too
    large, nested too deeply), 422 when one of its fields is wrong."""
    return 400 if field == "body" else 422


class ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    reason: str
    field: str | None = None  # which field of the body, for a refused request


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    error: ErrorDetail
    sequence: int


def json_response(body: object, sequence: int, status: int = 200) -> web.Response:
    """`body` encoded with msgspec; `sequence` must be the one the body reports."""
    response = web.Response(body=_encoder.encode(body), status=status, content_type=JSON)
    response.headers[SEQUENCE_HEADER] = str(sequence)
    return response


def error_response(
    status: int, reason: str, sequence: int, field: str | None = None
) -> web.Response:
    body = ErrorBody(error=ErrorDetail(reason, field), sequence=sequence)
    return json_response(body, sequence, status)
