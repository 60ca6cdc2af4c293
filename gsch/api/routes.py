"""The read routes: requests, their events, clusters and nodes, queues, health, metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import msgspec
import nats.errors
import prometheus_client
from aiohttp import web

from gsch.api import params
from gsch.api.cursor import Cursors, query_digest
from gsch.api.http import SEQUENCE_HEADER, ApiError, json_response
from gsch.api.spec import MIN_SEQ, TEXT, Operation, Param
from gsch.eventstore.store import EventStore
from gsch.model.request import POLICY_ALIASES
from gsch.model.states import State
from gsch.projections.expiry import Expired
from gsch.projections.projector import Projector
from gsch.projections.queries import RequestFilter, Snapshot
from gsch.projections.reader import ReadModel
from gsch.projections.views import (
    ClusterDetail,
    ClusterList,
    NodeList,
    QueueList,
    RequestDetail,
    RequestEvents,
    RequestPage,
)

STATES = {state.value: state.value for state in State if state is not State.NEW}
POLICIES = {name: policy.value for name, policy in POLICY_ALIASES.items()}
ORDERS = {"oldest": "oldest", "newest": "newest"}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_TEXT_LIST = {"type": "string", "minLength": 1}
_TIME = {"type": "string", "description": "unix seconds or RFC 3339 with a time zone"}
LIST_PARAMS = (
    Param("state", {"type": "array", "items": {"enum": sorted(STATES)}}, "Any of these states"),
    Param("policy", {"type": "array", "items": {"enum": sorted(POLICIES)}}, "Any of these"),
    Param("cluster", {"type": "array", "items": _TEXT_LIST}, "Placed on any of these clusters"),
    Param("project", {"type": "array", "items": _TEXT_LIST}, "In any of these projects"),
    Param("submitted_after", _TIME, "Submitted at or after this time"),
    Param("submitted_before", _TIME, "Submitted before this time"),
    Param("order", {"enum": sorted(ORDERS)}, "By submission: oldest (default) or newest first"),
    Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size"),
    Param("continue", {"type": "string"}, "The `continue` of the previous page"),
    MIN_SEQ,
)
REQUEST_ID = Param("id", {"type": "string"}, "Request id", location="path")
CLUSTER_NAME = Param("name", {"type": "string"}, "Member cluster name", location="path")


def expired_reason(gone: Expired) -> str:
    ended = datetime.fromtimestamp(gone.ended_at, UTC).isoformat(timespec="seconds")
    removed = datetime.fromtimestamp(gone.expired_at, UTC).isoformat(timespec="seconds")
    return (
        f"request {gone.request_id!r} expired: it ended {gone.state} at {ended} and its"
        f" history was removed at {removed}, after the retention of finished requests"
        " (retention.finished_requests)"
    )


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
        self,
        projector: Projector,
        reader: ReadModel,
        cursors: Cursors,
        store: EventStore | None = None,
    ) -> None:
        self._projector = projector
        self._reader = reader
        self._cursors = cursors
        self._store = store
        self._was_ready = False

    def operations(self) -> list[Operation]:
        one = (REQUEST_ID, MIN_SEQ)
        named = (CLUSTER_NAME, MIN_SEQ)
        return [
            Operation("GET", "/v1/requests", self.list_requests, "List requests, a page at"
                      " a time", RequestPage, LIST_PARAMS, errors=(410,)),
            Operation("GET", "/v1/requests/{id}", self.get_request, "One request",
                      RequestDetail, one, errors=(404, 410)),
            Operation("GET", "/v1/requests/{id}/events", self.request_events,
                      "The events of one request, in log order", RequestEvents, one,
                      errors=(404, 410)),
            Operation("GET", "/v1/clusters", self.list_clusters, "Member clusters",
                      ClusterList, (MIN_SEQ,)),
            Operation("GET", "/v1/clusters/{name}", self.get_cluster, "One member cluster",
                      ClusterDetail, named, errors=(404,)),
            Operation("GET", "/v1/clusters/{name}/nodes", self.cluster_nodes,
                      "The nodes of one member cluster", NodeList, named, errors=(404,)),
            Operation("GET", "/v1/queues", self.queues, "Unfinished requests per queue"
                      " level", QueueList, (MIN_SEQ,)),
            Operation("GET", "/livez", self.livez, "Alive", Health, reads=False),
            Operation("GET", "/readyz", self.readyz, "Ready: the read model has caught up",
                      Readiness, reads=False, answers=((503, Readiness),)),
            Operation("GET", "/metrics", self.metrics, "Prometheus metrics", None,
                      reads=False, media_type=TEXT),
        ]  # fmt: skip

    # --- requests ------------------------------------------------------------------------

    async def list_requests(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        params.only(query, [p.name for p in LIST_PARAMS])
        where = RequestFilter(
            states=params.choices(query, "state", STATES),
            policies=params.choices(query, "policy", POLICIES),
            clusters=params.values(query, "cluster"),
            projects=params.values(query, "project"),
            submitted_after=params.timestamp(query, "submitted_after"),
            submitted_before=params.timestamp(query, "submitted_before"),
        )
        (order,) = params.choices(query, "order", ORDERS) or ("oldest",)
        limit = params.integer(query, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        digest = query_digest(where, order)
        token = params.single(query, "continue")
        async with self._reader.snapshot() as snapshot:
            after = self._cursors.open(token, digest, snapshot.sequence) if token else None
            items, next_after = await snapshot.requests(
                where, after=after, limit=limit, newest_first=order == "newest"
            )
        following = None
        if next_after is not None:
            following = self._cursors.issue(next_after, digest, snapshot.sequence)
        page = RequestPage(items=tuple(items), continue_=following, sequence=snapshot.sequence)
        return json_response(page, snapshot.sequence)

    async def get_request(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "id", "request", Snapshot.request)

    async def request_events(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "id", "request", Snapshot.request_events)

    # --- clusters and queues -------------------------------------------------------------

    async def list_clusters(self, request: web.Request) -> web.StreamResponse:
        params.only(request.query, ())
        async with self._reader.snapshot() as snapshot:
            found = await snapshot.clusters()
        return json_response(found, found.sequence)

    async def get_cluster(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "name", "cluster", Snapshot.cluster)

    async def cluster_nodes(self, request: web.Request) -> web.StreamResponse:
        return await self._one(request, "name", "cluster", Snapshot.nodes)

    async def queues(self, request: web.Request) -> web.StreamResponse:
        params.only(request.query, ())
        async with self._reader.snapshot() as snapshot:
            found = await snapshot.queues()
        return json_response(found, found.sequence)

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
            gone = await snapshot.expired(name) if found is None and what == "request" else None
        if gone is not None:
            raise ApiError(410, expired_reason(gone))
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
                    stream_last = await self._store.newest_seq()
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
        response = web.Response(
            body=prometheus_client.generate_latest(),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )
        response.headers[SEQUENCE_HEADER] = str(self._projector.last_seq)
        return response
