"""Assemble the HTTP read API: routes, middlewares, and the read connections it owns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gsch.api.middleware import count_requests, json_errors, read_your_writes
from gsch.api.plan_routes import PlanRoutes
from gsch.api.routes import ReadRoutes
from gsch.eventstore.store import EventStore
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModel
from gsch.scheduler.dryrun import DryRun

MAX_WAIT = 10.0  # the longest a `min_seq` read waits for the projection


def make_app(
    projector: Projector,
    *,
    store: EventStore | None = None,
    max_wait: float = MAX_WAIT,
    read_connections: int = 4,
    dry_run: DryRun | None = None,
) -> web.Application:
    """The read API over `projector`'s database, which `projector.open()` must have created
    before the first request. `store`, when given, is used for readiness only."""
    reader = ReadModel(projector.db_path, projector.stream, connections=read_connections)
    app = web.Application(
        middlewares=[
            count_requests,  # outermost: counts the answers the error handler produced
            json_errors(projector),
            read_your_writes(projector, max_wait),
        ]
    )
    ReadRoutes(projector, reader, store).add_to(app.router)
    if dry_run is not None:
        PlanRoutes(dry_run).add_to(app.router)

    async def close_reader(_: web.Application) -> AsyncIterator[None]:
        yield
        await reader.close()

    app.cleanup_ctx.append(close_reader)
    return app
