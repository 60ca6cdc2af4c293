"""What every request goes through: counting, JSON errors, `min_seq`, and ETags."""

from __future__ import annotations

import hashlib
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gsch.api import params
from gsch.api.http import JSON, SEQUENCE_HEADER, STALE, STALE_HEADER, ApiError, error_response
from gsch.metrics import HTTP_DURATION, HTTP_REQUESTS
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModelUnavailableError

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count by route template, never by raw path (one series per route, not per id), and
    by method from a closed set (a client can send any method name)."""
    started = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    method = request.method if request.method in _METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, code=str(response.status)).inc()
    if isinstance(response, web.Response):  # not a change feed, which lasts as long as it likes
        HTTP_DURATION.labels(route=route, method=method).observe(time.perf_counter() - started)
    return response


def json_errors(projector: Projector) -> Middleware:
    """Every error as JSON with a reason, including the router's 404 and 405."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            reason = _stale(request, exc.reason)
            response = error_response(exc.status, reason, projector.last_seq, exc.field)
            response.headers.update(exc.headers)
            if STALE in request:
                response.headers[STALE_HEADER] = "true"
            return response
        except ReadModelUnavailableError as exc:
            log.warning("read model unavailable", extra={"error": str(exc)})
            return error_response(503, "the read model is not available yet", projector.last_seq)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(exc.status, _reason(exc, request), projector.last_seq)
            allow = exc.headers.get("Allow")
            if allow is not None:
                response.headers["Allow"] = allow
            return response
        except Exception:
            # The boundary of the process: log with the traceback, answer, keep serving.
            log.exception("request failed", extra={"path": request.path})
            return error_response(500, "internal error", projector.last_seq)

    return middleware


def read_your_writes(projector: Projector, max_wait: float) -> Middleware:
    """`?min_seq=N` on a /v1 read: answer once the read model has reached N. After
    `max_wait` the answer is the current one, flagged `X-Gsch-Stale: true`; its sequence
    (header and body) is then below N, so a client can tell either way."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wanted = 0
        if request.path.startswith("/v1/") and request.method in ("GET", "HEAD"):
            wanted = params.integer(request.query, params.MIN_SEQ, default=0, low=0)
            if not await projector.wait_for(wanted, max_wait):
                request[STALE] = wanted
        response = await handler(request)
        if STALE in request and not response.prepared:  # a stream flagged itself
            response.headers[STALE_HEADER] = "true"
        return response

    return middleware


@web.middleware
async def etags(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A strong ETag on every complete JSON answer to a GET; `If-None-Match` with it gives
    a 304 (its sequence header included)."""
    response = await handler(request)
    if (
        request.method not in ("GET", "HEAD")
        or response.status != 200
        or not isinstance(response, web.Response)
        or response.content_type != JSON
        or response.body is None
        or not isinstance(response.body, bytes)
    ):
        return response
    tag = f'"{hashlib.blake2b(response.body, digest_size=12).hexdigest()}"'
    response.headers["ETag"] = tag
    wanted = request.headers.get("If-None-Match")
    if wanted is not None and (wanted.strip() == "*" or tag in _tags(wanted)):
        not_modified = web.Response(status=304, headers={"ETag": tag})
        for name in (SEQUENCE_HEADER, STALE_HEADER):
            if name in response.headers:
                not_modified.headers[name] = response.headers[name]
        return not_modified
    return response


def _tags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",")}


def _stale(request: web.Request, reason: str) -> str:
    if STALE in request:
        return f"{reason} (the read model had not reached min_seq {request[STALE]} yet)"
    return reason


def _reason(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"no such resource: {request.path}"
    if exc.status == 405:
        return f"method {request.method} not allowed on {request.path}"
    if exc.status == 413:
        return f"the request body is larger than {request.client_max_size} bytes"
    return exc.reason
