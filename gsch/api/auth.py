"""Bearer tokens: every write route needs the write token; the plan route needs the plan token
or the write token (a plan costs CPU: never anonymous); reads need the read token (or the
write token) only when one is configured. Probes and /metrics stay open.

What a route needs is declared once, in the route table (`Operation(writes=True)`,
`Operation(plans=True)`); this middleware looks the matched route up, so a new route is
protected by that flag alone.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gsch.api.http import ApiError
from gsch.runtime.config import AuthConfig, read_secret


@dataclass(frozen=True)
class Tokens:
    write: str | None = None  # None: writes are refused
    read: str | None = None  # None: reads are open
    plan: str | None = None  # None: plans need the write token (none either: refused)

    @classmethod
    def from_config(cls, config: AuthConfig) -> Tokens:
        return cls(
            read_secret(config.token_file),
            read_secret(config.read_token_file),
            read_secret(config.plan_token_file),
        )


@dataclass(frozen=True)
class Guarded:
    """The routes of an app by what they need."""

    writes: frozenset[web.AbstractRoute]
    reads: frozenset[web.AbstractRoute]
    plans: frozenset[web.AbstractRoute] = frozenset()


def bearer_tokens(tokens: Tokens, guarded: Guarded) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        if route in guarded.writes:
            if tokens.write is None:
                raise ApiError(403, "writes are disabled: no api.auth.token_file is configured")
            _check(request, (tokens.write,), "write")
        elif route in guarded.plans:
            if tokens.write is None and tokens.plan is None:
                raise ApiError(
                    403,
                    "planning is disabled: neither api.auth.plan_token_file nor"
                    " api.auth.token_file is configured",
                )
            _check(request, (tokens.plan, tokens.write), "plan (or write)")
        elif tokens.read is not None and route in guarded.reads:
            _check(request, (tokens.read, tokens.write), "read")
        return await handler(request)

    return middleware


def _check(request: web.Request, accepted: tuple[str | None, ...], kind: str) -> None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise _unauthorized(f"this endpoint needs the {kind} token as 'Authorization: Bearer …'")
    # Constant time: the comparison must not tell how much of a guess was right.
    if not any(t is not None and hmac.compare_digest(given.encode(), t.encode()) for t in accepted):
        raise _unauthorized(f"the bearer token is not the {kind} token")


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, reason, {"WWW-Authenticate": 'Bearer realm="gsch"'})
