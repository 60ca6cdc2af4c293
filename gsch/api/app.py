"""Assemble the HTTP API: the route table, its middlewares, and the connections it owns."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from gsch.api.auth import Guarded, Tokens, bearer_tokens
from gsch.api.cancel_routes import CancelRoutes
from gsch.api.cursor import Cursors
from gsch.api.gedge import GedgeDoor
from gsch.api.http import json_response
from gsch.api.middleware import count_requests, etags, json_errors, read_your_writes
from gsch.api.plan_routes import Planner, PlanRoutes
from gsch.api.routes import ReadRoutes
from gsch.api.spec import Operation, openapi, register
from gsch.api.submit import SubmitRoutes
from gsch.api.tenancy import TenancyRoutes
from gsch.api.watch import CLOSING, WatchRoutes, close_feeds
from gsch.eventstore.store import EventStore
from gsch.model.intake import IntakeRules
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModel
from gsch.runtime.config import ApiConfig, Config, read_secret
from gsch.scheduler.rules import intake_rules


def make_app(
    projector: Projector,
    *,
    store: EventStore | None = None,
    planner: Planner | None = None,
    config: ApiConfig | None = None,
    tokens: Tokens | None = None,
    gedge: GedgeDoor | None = None,
    tenancy: TenancyRoutes | None = None,
    max_wait: float | None = None,
    read_connections: int = 4,
    continue_secret: str | None = None,
    intake: IntakeRules | Callable[[], IntakeRules] | None = None,
) -> web.Application:
    """The API over `projector`'s database, which `projector.open()` must have created
    before the first request. `store`, when given, serves readiness and submissions;
    `planner`, POST /v1/plan. Submissions are checked with `intake`, the workers' rules (by
    default those of a default configuration). `tokens` default to the files named in `config.auth`.
    `continue` tokens are signed with `config.continue_secret_file`, else `continue_secret`
    (the installation's), else a secret of this process alone (its tokens die with it)."""
    config = config or ApiConfig()
    tokens = tokens if tokens is not None else Tokens.from_config(config.auth)
    secret = read_secret(config.continue_secret_file) or continue_secret or secrets.token_hex(32)
    reader = ReadModel(projector.db_path, projector.stream, connections=read_connections)
    cursors = Cursors(secret.encode(), config.continue_window)
    operations: list[Operation] = [
        *ReadRoutes(projector, reader, cursors, store).operations(),
        *WatchRoutes(
            projector, reader, config.watch_heartbeat, config.watch_max_seconds
        ).operations(),
    ]
    if store is not None:
        fixed = intake_rules(Config()) if intake is None else intake
        rules = fixed if callable(fixed) else (lambda: fixed)  # the rules as they are now
        operations += SubmitRoutes(store, projector, config.submit_wait, rules).operations()
        operations += CancelRoutes(store, projector).operations()
    if planner is not None:
        operations += PlanRoutes(planner).operations()
    if gedge is not None:  # GEdge's own shapes, with the door's own token (api/gedge.py)
        operations += gedge.operations()
    if tenancy is not None:  # projects and workspaces as data
        operations += tenancy.operations()

    async def spec(_: web.Request) -> web.StreamResponse:
        return json_response(document, projector.last_seq)

    operations.append(
        Operation("GET", "/openapi.json", spec, "This document", dict[str, Any], reads=False)
    )
    document = openapi(operations, auth=tokens.read is not None)
    app = web.Application(client_max_size=config.max_body_bytes)
    routes = register(app.router, operations)
    guarded = Guarded(
        writes=frozenset(route for route, op in routes.items() if op.writes),
        reads=frozenset(route for route, op in routes.items() if op.reads and not op.writes),
        plans=frozenset(route for route, op in routes.items() if op.plans),
    )
    app.middlewares.extend([
        count_requests,  # outermost: counts the answers the error handler produced
        json_errors(projector),
        bearer_tokens(tokens, guarded),
        etags,
        read_your_writes(projector, config.max_wait if max_wait is None else max_wait),
    ])  # fmt: skip
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(close_feeds)

    async def close_reader(_: web.Application) -> AsyncIterator[None]:
        yield
        await reader.close()

    app.cleanup_ctx.append(close_reader)
    return app
