"""POST /v1/requests: publish a request to the intake, as `gsch submit` does, and say where
the log has it.

A request is decided by a worker, asynchronously; the intake's acknowledgement is the
promise that it will settle. The intake is another stream than the event log, so its
sequence means nothing to `min_seq`. The route therefore waits (at most `submit_wait`
seconds) for the request's first event in the log (accepted or rejected) and answers with
that event's sequence: passed as `min_seq` to any read, it makes the read reflect the
request. If no worker took it in time the answer says so (`event_sequence` null), and
`GET /v1/requests/{id}/watch` follows it from its first event whenever that comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import nats.errors
from aiohttp import web

from gsch.api.http import ApiError, json_response
from gsch.api.spec import Operation
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import request_history
from gsch.model.documents import DocumentError, load_request_body
from gsch.model.events import RequestRejected
from gsch.model.forms import Invalid, claimed_request_id, detect_form, set_request_id
from gsch.model.ids import fresh_request_id
from gsch.model.states import State, step
from gsch.projections.projector import Projector


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    intake_sequence: int
    duplicate: bool  # this id was submitted before: nothing new will happen
    state: str | None  # after the request's first event; null: no worker took it yet
    reason: str | None  # why it was rejected
    event_sequence: int | None  # the first event's stream sequence: use as min_seq
    sequence: int  # event_sequence when known, else the read model's sequence


class SubmitRoutes:
    def __init__(self, store: EventStore, projector: Projector, wait: float) -> None:
        self._store = store
        self._projector = projector
        self._wait = wait

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/v1/requests", self.submit, "Submit a scheduling request (any"
                      " accepted form)", Submitted, body=dict[str, Any], writes=True,
                      status=202),
        ]  # fmt: skip

    async def submit(self, request: web.Request) -> web.StreamResponse:
        try:  # JSON or YAML, one document or a request and its manifests
            body = load_request_body(await request.read())
        except DocumentError as exc:
            raise ApiError(400, f"the body must be a JSON object or YAML request: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(
                400, f"the body must be a JSON object or YAML request, got {type(body).__name__}"
            )
        request_id = _request_id(body)
        try:
            ack = await self._store.publish_intake(msgspec.json.encode(body), request_id)
            first = await self._first_event(request_id)
        except (TimeoutError, nats.errors.Error) as exc:
            raise ApiError(503, f"the event log is unreachable: {exc!r}") from None
        state = reason = None
        if first is not None:
            change = step(State.NEW, first.event)
            state = change.state.value if change is not None else None
            if isinstance(first.event, RequestRejected):
                reason = first.event.reason
        sequence = first.seq if first is not None else self._projector.last_seq
        answer = Submitted(
            request_id=request_id,
            intake_sequence=ack.seq,
            duplicate=ack.duplicate
            or (first is not None and _intake_seq(first) not in (None, int(ack.seq))),
            state=state,
            reason=reason,
            event_sequence=first.seq if first is not None else None,
            sequence=sequence,
        )
        response = json_response(answer, sequence, status=202)
        response.headers["Location"] = f"/v1/requests/{request_id}"
        return response

    async def _first_event(self, request_id: str) -> StoredEvent | None:
        """The request's first event, polled with backoff until `submit_wait` runs out."""
        scope = request_history(request_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = 0.01
        while True:
            first = await self._store.first_after(scope, 0)
            if first is not None or loop.time() + pause > deadline:
                return first
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)


def _request_id(body: dict[str, Any]) -> str:
    """The sender's id, or a new one written into the body where the intake reads it."""
    form = detect_form(body)
    found = claimed_request_id(form, body) if form == "gedge-v2" else body.get("request_id")
    if found is None:
        found = fresh_request_id("api")
        try:
            set_request_id(form, body, found)
        except Invalid as exc:
            raise ApiError(400, str(exc)) from None
    if not isinstance(found, str) or not found:
        raise ApiError(400, "request_id must be a non-empty string")
    return found


def _intake_seq(first: StoredEvent) -> int | None:
    return getattr(first.event, "intake_seq", None)
