"""Change feeds as server-sent events: follow one request, or every request, without polling.

Each SSE message is one request event from the read model: `id` is its stream sequence (so a
reconnecting EventSource resumes exactly with `Last-Event-ID`), `event` its type, `data` a
`Change`. An idle feed sends a comment line every `heartbeat` seconds so proxies keep it open
and clients notice a dead connection. A request's feed ends after the event that leaves the
request final (failed, cancelled, rejected, or its workload finished); every feed ends after
`max_seconds` or when the server shuts down, and a client resumes from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from aiohttp import web

from gsch.api import params
from gsch.api.http import SEQUENCE_HEADER, STALE, STALE_HEADER, ApiError
from gsch.api.spec import MIN_SEQ, SSE, Operation, Param
from gsch.model.events import WorkloadFinished
from gsch.model.states import FINAL_STATES, entered_by
from gsch.projections.projector import Projector
from gsch.projections.reader import ReadModel
from gsch.projections.views import EventRecord

BATCH = 500
AFTER = Param(
    "after",
    {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "Start after this stream sequence (as the Last-Event-ID header does)",
)
LAST_EVENT_ID = Param(
    "Last-Event-ID",
    {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "Resume after this event id",
    location="header",
)
CLOSING = web.AppKey("watch_closing", asyncio.Event)


class Change(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    request_id: str
    type: str
    at: float
    state: str | None  # the request's state after this event (None: unchanged)
    final: bool  # nothing follows for this request
    event: msgspec.Raw  # the event as stored in the log


class WatchRoutes:
    def __init__(
        self, projector: Projector, reader: ReadModel, heartbeat: float, max_seconds: float
    ) -> None:
        self._projector = projector
        self._reader = reader
        self._heartbeat = heartbeat
        self._max_seconds = max_seconds

    def operations(self) -> list[Operation]:
        feed = (AFTER, LAST_EVENT_ID, MIN_SEQ)
        request_id = Param("id", {"type": "string"}, "Request id", location="path")
        return [
            Operation("GET", "/v1/watch", self.watch_all, "Every request event from now (or"
                      " after `after`), as server-sent events", None, feed, media_type=SSE),
            Operation("GET", "/v1/requests/{id}/watch", self.watch_one, "One request's"
                      " events from its first until it is final, as server-sent events", None,
                      (request_id, *feed), media_type=SSE, errors=(404,)),
        ]  # fmt: skip

    async def watch_all(self, request: web.Request) -> web.StreamResponse:
        after = self._start(request)
        start = self._projector.last_seq if after is None else after  # default: from now on
        return await self._stream(request, None, start)

    async def watch_one(self, request: web.Request) -> web.StreamResponse:
        after = self._start(request)
        request_id = request.match_info["id"]
        async with self._reader.snapshot() as snapshot:
            known = await snapshot.request(request_id)
        if known is None:
            raise ApiError(404, f"no request {request_id!r}")
        return await self._stream(request, request_id, after or 0)

    def _start(self, request: web.Request) -> int | None:
        params.only(request.query, ("after",))
        after = params.integer(request.query, "after", default=-1, low=0)
        header = request.headers.get("Last-Event-ID")
        if header is not None:
            if not header.isdigit() or len(header) > 18:
                raise ApiError(400, f"header Last-Event-ID must be an event id, not {header!r}")
            after = max(after, int(header))
        return None if after < 0 else after

    async def _stream(
        self, request: web.Request, request_id: str | None, cursor: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": SSE,
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
                SEQUENCE_HEADER: str(self._projector.last_seq),
            }
        )
        if STALE in request:
            response.headers[STALE_HEADER] = "true"
        await response.prepare(request)
        closing = request.app[CLOSING]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_seconds
        with contextlib.suppress(ConnectionResetError):
            await response.write(b"retry: 1000\n\n")
            while not closing.is_set() and loop.time() < deadline:
                async with self._reader.snapshot() as snapshot:
                    records = await snapshot.changes(
                        after=cursor, request_id=request_id, limit=BATCH
                    )
                for record in records:
                    change = _change(record)
                    await response.write(_message(change))
                    cursor = record.seq
                    if request_id is not None and change.final:
                        return response
                if len(records) == BATCH:
                    continue
                wait = min(self._heartbeat, max(0.0, deadline - loop.time()))
                if not await self._advanced(max(cursor, snapshot.sequence) + 1, wait, closing):
                    await response.write(f": heartbeat {self._projector.last_seq}\n\n".encode())
        return response

    async def _advanced(self, seq: int, timeout: float, closing: asyncio.Event) -> bool:
        """Whether the read model reached `seq` within `timeout` (False on shutdown too)."""
        reached = asyncio.create_task(self._projector.wait_for(seq, timeout))
        closed = asyncio.create_task(closing.wait())
        try:
            await asyncio.wait((reached, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reached, closed):
                task.cancel()
        return reached.done() and not reached.cancelled() and reached.result()


def _change(record: EventRecord) -> Change:
    # Each record alone, without the request's state before it: in a log whose appends are
    # conditional no event follows a final state, so the state an event enters is the state.
    state = entered_by(record.type)
    final = state in FINAL_STATES or record.type == WorkloadFinished.__name__
    return Change(
        seq=record.seq,
        request_id=record.request_id,
        type=record.type,
        at=record.at,
        state=state.value if state is not None else None,
        final=final,
        event=record.event,
    )


_encoder = msgspec.json.Encoder()


def _message(change: Change) -> bytes:
    data = _encoder.encode(change)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (change.seq, change.type.encode(), data)


async def close_feeds(app: web.Application) -> None:
    """on_shutdown: end every open feed now rather than at its next heartbeat."""
    app[CLOSING].set()
