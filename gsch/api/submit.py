"""POST /v1/requests: check a request as a worker would, publish it to the intake, as `gsch
submit` does, and say where the log has it.

Nothing is published that a worker would reject (the same `admit`): the answer is then a 400
(the body is not a request at all) or a 422 (a field is wrong), naming the field. Nothing is
published under an id the log already holds for another request: a 409, the original
untouched. The same request sent again is idempotent (202, `duplicate`).

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
from collections.abc import Callable
from typing import Any

import msgspec
import nats.errors
from aiohttp import web

from gsch.api.http import ApiError, json_response, refusal_status
from gsch.api.spec import Operation
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import request_history
from gsch.model.decisions import is_conflict
from gsch.model.digest import body_digest
from gsch.model.documents import DocumentError, load_request_body
from gsch.model.events import RequestRejected
from gsch.model.forms import Invalid, claimed_request_id, detect_form, set_request_id
from gsch.model.ids import fresh_request_id
from gsch.model.intake import IntakeRules, Rejection
from gsch.model.request import Request
from gsch.model.states import RequestState, State, step
from gsch.projections.projector import Projector
from gsch.scheduler.rules import admit


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    intake_sequence: int
    duplicate: bool  # this id was submitted before: nothing new will happen
    state: str | None  # after the request's first event; null: no worker took it yet
    reason: str | None  # why it was rejected
    event_sequence: int | None  # the first event's stream sequence: use as min_seq
    sequence: int  # event_sequence when known, else the read model's sequence


class SubmitRoutes:
    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        wait: float,
        rules: Callable[[], IntakeRules],
    ) -> None:
        self._store = store
        self._projector = projector
        self._wait = wait
        self._rules = rules

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/v1/requests", self.submit, "Submit a scheduling request (any"
                      " accepted form)", Submitted, body=dict[str, Any], writes=True,
                      status=202, errors=(409, 422)),
        ]  # fmt: skip

    async def submit(self, request: web.Request) -> web.StreamResponse:
        try:  # JSON or YAML, one document or a request and its manifests
            body = load_request_body(await request.read())
        except DocumentError as exc:
            problem = f"the body must be a JSON object or YAML request: {exc}"
            raise ApiError(400, problem, field="body") from None
        except RecursionError:  # msgspec's own depth limit, far below max_body_bytes
            raise ApiError(400, "the body is nested too deeply", field="body") from None
        if not isinstance(body, dict):
            problem = f"the body must be a JSON object or YAML request, got {type(body).__name__}"
            raise ApiError(400, problem, field="body")
        request_id = _request_id(body)
        data = msgspec.json.encode(body)
        _admitted(admit(data, self._rules(), request_id))
        digest = body_digest(data)  # what the worker compares too
        try:
            _refuse_conflict(await self._store.load_request(request_id), digest)
            ack = await self._store.publish_intake(data, request_id)
            first = await self._first_event(request_id)
            if first is not None and _intake_seq(first) not in (None, int(ack.seq)):
                # Another message started this id first (a race, or one the intake's
                # de-duplication dropped ours for): is it the same request?
                _refuse_conflict(await self._store.load_request(request_id), digest)
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
            raise ApiError(400, str(exc), field="request_id") from None
    if not isinstance(found, str) or not found:
        raise ApiError(400, "request_id must be a non-empty string")
    return found


def _intake_seq(first: StoredEvent) -> int | None:
    return getattr(first.event, "intake_seq", None)


def _admitted(decoded: Request | Rejection) -> None:
    """Nothing when a worker will take the request; else the refusal a worker would record."""
    if isinstance(decoded, Rejection):
        reason = f"request refused: {decoded.reason}"
        raise ApiError(refusal_status(decoded.field), reason, field=decoded.field)


def _refuse_conflict(known: RequestState, digest: str) -> None:
    """409 when the log holds this id for another request: the worker's own rule
    (`is_conflict` on body digests), so the same request written out again (other key order,
    whitespace) is the same request, and the API and the worker never disagree."""
    if not is_conflict(known, digest):
        return
    held = (
        f"a request that was rejected ({known.reasons[-1] if known.reasons else 'no reason'})"
        if known.request is None
        else f"another request, now {known.state.value}"
    )
    raise ApiError(
        409,
        f"request id {known.request_id!r} is already used by {held}, from intake sequence"
        f" {known.intake_seq}: nothing was submitted; choose another id (the same request"
        " sent again is harmless)",
        field="request_id",
    )
