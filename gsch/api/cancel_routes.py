"""POST /v1/requests/{id}/cancel: cancel a request that is not final, as `gsch cancel` does.

The cancel is one conditional append to the log (`gsch.scheduler.cancel`), so the answer is
final: `cancelled` with the event's sequence (pass it as `min_seq` to read the change), or a
no-op that says why (the request was already final).
"""

from __future__ import annotations

import msgspec
import nats.errors
from aiohttp import web

from gsch.api.http import ApiError, json_response
from gsch.api.routes import REQUEST_ID
from gsch.api.spec import Operation
from gsch.eventstore.appends import ConflictError, StoreUnavailableError
from gsch.eventstore.store import EventStore
from gsch.model.request import REQUEST_ID_PATTERN
from gsch.projections.projector import Projector
from gsch.scheduler.cancel import cancel_request

DEFAULT_REASON = "cancelled through the API"


class CancelBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: str = DEFAULT_REASON


class CancelAnswer(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    cancelled: bool  # false: it was final already, nothing changed
    previous_state: str  # "new": not in the log yet; the cancel keeps it from being scheduled
    state: str
    message: str
    event_sequence: int | None  # the RequestCancelled event: use as min_seq
    sequence: int


_body = msgspec.json.Decoder(CancelBody)


class CancelRoutes:
    def __init__(self, store: EventStore, projector: Projector) -> None:
        self._store = store
        self._projector = projector

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/v1/requests/{id}/cancel", self.cancel, "Cancel a request that"
                      " is not final (releases its capacity; binders remove its workload)",
                      CancelAnswer, params=(REQUEST_ID,), body=CancelBody, writes=True,
                      errors=(409,)),
        ]  # fmt: skip

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        request_id = request.match_info["id"]
        if not REQUEST_ID_PATTERN.match(request_id):
            raise ApiError(400, f"{request_id[:80]!r} is not a request id")
        raw = await request.read()
        try:
            body = _body.decode(raw) if raw.strip() else CancelBody()
        except msgspec.DecodeError as exc:
            raise ApiError(400, f'the body must be {{"reason": string}} or empty: {exc}') from None
        if len(body.reason) > 1024:
            raise ApiError(400, "reason: longer than 1024 characters")
        try:
            outcome = await cancel_request(self._store, request_id, body.reason)
        except ConflictError as exc:
            raise ApiError(409, str(exc)) from None
        except (StoreUnavailableError, TimeoutError, nats.errors.Error) as exc:
            raise ApiError(503, f"the event log is unreachable: {exc!r}") from None
        sequence = outcome.seq or self._projector.last_seq
        answer = CancelAnswer(
            request_id=outcome.request_id,
            cancelled=outcome.cancelled,
            previous_state=outcome.previous_state,
            state=outcome.state,
            message=outcome.message,
            event_sequence=outcome.seq or None,
            sequence=sequence,
        )
        return json_response(answer, sequence)
