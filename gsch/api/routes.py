"""The read routes: requests, their events, clusters and nodes, health and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import nats.errors
import prometheus_client
from aiohttp import web

from gsch.api import params
from gsch.api.http import ApiError, json_response
from gsch.eventstore.store import EventStore
from gsch.model.request import POLICY_ALIASES
from gsch.model.states import State
from gsch.projections.projector import Projector
from gsch.projections.queries import RequestFilter, Snapshot
from gsch.projections.reader import ReadModel
from gsch.projections.views import RequestPage

STATES = {state.value: state.value for state in State if state is not State.NEW}
POLICIES = {name: policy.value for name, policy in POLICY_ALIASES.items()}
LIST_PARAMETERS = ("state", "policy", "cluster", "project", "limit", "continue")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class _Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    sequence: int


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    reason: str | None
    stream_sequence: int | None
    sequence: int


class ReadRoutes:
    def __init__(
        self, projector: Projector, reader: ReadModel, store: EventStore | None = None
    ) -> None:
        self._projector = projector
        self._reader = reader
        self._store = store
        self._was_ready = False

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/requests", self.list_requests)
        router.add_get("/v1/requests/{id}", self.get_request)
        router.add_get("/v1/requests/{id}/events", self.request_events)
        router.add_get("/v1/clusters", self.list_clusters)
        router.add_get("/v1/clusters/{name}", self.get_cluster)
        router.add_get("/v1/clusters/{name}/nodes", self.cluster_nodes)
        router.add_get("/livez", self.livez)
        router.add_get("/readyz", self.readyz)
        router.add_get("/metrics", self.metrics)

    # --- requests ------------------------------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        params.only(query, LIST_PARAMETERS)
        where = RequestFilter(
            states=params.choices(query, "state", STATES),
            policies=params.choices(query, "policy", POLICIES),
            clusters=params.values(query, "cluster"),
            projects=params.values(query, "project"),
        )
        limit = params.integer(query, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        after = params.decode_continue(params.single(query, "continue"))
        async with self._reader.snapshot() as snapshot:
            items, next_after = await snapshot.requests(where, after=after, limit=limit)
        token = params.encode_continue(next_after) if next_after is not None else None
        page = RequestPage(items=tuple(items), continue_=token, sequence=snapshot.sequence)
        return json_response(page, snapshot.sequence)

    async def get_request(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "id", "request", Snapshot.request)

    async def request_events(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "id", "request", Snapshot.request_events)

    # --- clusters ------------------------------------------------------------------------

    async def list_clusters(self, request: web.Request) -> web.StreamResponse:
        params.only(request.query, ())
        async with self._reader.snapshot() as snapshot:
            found = await snapshot.clusters()
        return json_response(found, found.sequence)

    async def get_cluster(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "name", "cluster", Snapshot.cluster)

    async def cluster_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "name", "cluster", Snapshot.nodes)

    async def _one(
        self,
        request: web.Request,
        key: str,
        what: str,
        query: Callable[[Snapshot, str], Awaitable[_Sequenced | None]],
    ) -> web.StreamResponse:
        """One named thing from one read transaction, or a 404 that says what was missing."""
        params.only(request.query, ())
        name = request.match_info[key]
        async with self._reader.snapshot() as snapshot:
            found = await query(snapshot, name)
        if found is None:
            raise ApiError(404, f"no {what} {name!r}")
        return json_response(found, found.sequence)

    # --- health --------------------------------------------------------------------------

    async def livez(self, request: web.Request) -> web.StreamResponse:
        sequence = self._projector.last_seq
        return json_response(Health(status="ok", sequence=sequence), sequence)

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        """Ready once the read model has caught up with the log (then for good: falling
        behind under load is lag, shown by gsch_projection_lag_events, not unreadiness)."""
        sequence = self._projector.last_seq
        stream_last: int | None = None
        reason: str | None = None
        if not self._was_ready:
            try:
                if self._store is not None:
                    stream_last = await self._store.last_seq()
                    self._was_ready = sequence >= stream_last
                else:
                    self._was_ready = await self._projector.caught_up()
            except (TimeoutError, nats.errors.Error) as exc:
                reason = f"event log unreachable: {exc!r}"
            else:
                if not self._was_ready:
                    reason = "the read model has not caught up with the event log yet"
        body = Readiness(
            ready=self._was_ready, reason=reason, stream_sequence=stream_last, sequence=sequence
        )
        return json_response(body, sequence, status=200 if self._was_ready else 503)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=prometheus_client.generate_latest(),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )
