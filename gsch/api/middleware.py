"""What every request goes through: counting, JSON errors, and waiting for `min_seq`."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gsch.api import params
from gsch.api.http import ApiError, error_response
from gsch.metrics import HTTP_REQUESTS
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModelUnavailableError

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count by route template, never by raw path (one series per route, not per id)."""
    response = await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    HTTP_REQUESTS.labels(route=route, code=str(response.status)).inc()
    return response


def json_errors(projector: Projector) -> Middleware:
    """Every error as JSON with a reason, including the router's 404 and 405."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.reason, projector.last_seq)
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
    """`?min_seq=N` on a /v1 read: answer only once the read model has reached N."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/") and request.method in ("GET", "HEAD"):
            wanted = params.integer(request.query, params.MIN_SEQ, default=0, low=0)
            if not await projector.wait_for(wanted, max_wait):
                raise ApiError(
                    504,
                    f"the read model did not reach sequence {wanted} within {max_wait:g} s"
                    f" (it is at {projector.last_seq})",
                )
        return await handler(request)

    return middleware


def _reason(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"no such resource: {request.path}"
    if exc.status == 405:
        return f"method {request.method} not allowed on {request.path}"
    return exc.reason
