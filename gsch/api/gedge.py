"""The GEdge door: GEdge's own HTTP shapes, for GEdge's clients pointed at gsch unchanged.

- `POST /GEP/GSCH/test/{low,most,select}`: the v4 front server's multipart upload.
- `POST /gmcapi/v2/gs-scheduler`: what gm-center forwards to its `GS_SCHEDULER` (query
  string + YAML body, sent as `application/json`), the same shape gm-tool posts to gm-center.

Both are translated (`gsch.model.gedge_doors`) into the GEdge v4 option form and published
to the intake like any request; the door then waits (`[gedge] verdict_wait`) for the worker's
verdict and answers so that GEdge's clients tell their user the truth: an accepted request is
`202` with GEdge's `{"result": "request_id:<id>"}`; a rejected one is `400` with an `error`
object (gm-center reports failure when the answer has an `error` key; the front server's
own `Error` object is there too); an id taken by another body is `409`.

The door exists only when `[gedge] token_file` is set, and it has its own token (a GEdge
gateway is not given the API's write token): `Authorization: Bearer <token>`, the header
`[gedge] token_header`, or the path prefix `/gedge/<token>` for a gateway whose only setting
is a URL. Metrics name the route template, never the path, so the token stays out of them.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any

import msgspec
import nats.errors
from aiohttp import web

from gsch.api.http import ApiError, json_response
from gsch.api.spec import Operation, Param
from gsch.client import intake_verdict
from gsch.eventstore.store import EventStore
from gsch.model.documents import DocumentLimits
from gsch.model.events import RequestIdConflict
from gsch.model.gedge_doors import DoorError, Translated, front_server_request, gateway_request
from gsch.model.request import REQUEST_ID_PATTERN
from gsch.model.states import State
from gsch.projections.projector import Projector
from gsch.runtime.config import Config, ConfigError, GedgeConfig, read_secret

FRONT_SERVER = "/GEP/GSCH/test/{policy}"
GATEWAY = "/gmcapi/v2/gs-scheduler"
PATH_TOKEN = "/gedge/{token}"


class DoorAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    result: str  # GEdge's words: "request_id:<id>"
    request_id: str
    client_request_id: str | None = None  # the id the client sent, when gsch gave another
    state: str | None  # after the worker's verdict; null: no worker took it in time
    event_sequence: int | None  # the request's first event: min_seq for the read API
    sequence: int


class _GedgeError(msgspec.Struct, frozen=True):
    ErrorCode: str
    Message: str


class _ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    reason: str
    field: str | None = None


class DoorRefusal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    error: _ErrorDetail  # what gm-center looks for
    Error: _GedgeError  # what GEdge's front server answered
    request_id: str | None = None
    sequence: int


def _refusal(status: int, code: str, reason: str, sequence: int, **extra: Any) -> web.Response:
    body = DoorRefusal(
        error=_ErrorDetail(reason, extra.get("field")),
        Error=_GedgeError(code, reason),
        request_id=extra.get("request_id"),
        sequence=sequence,
    )
    return json_response(body, sequence, status)


class GedgeDoor:
    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        config: GedgeConfig,
        token: str,
        limits: DocumentLimits,
    ) -> None:
        self._store = store
        self._projector = projector
        self._config = config
        self._token = token
        self._limits = limits

    def operations(self) -> list[Operation]:
        policy = Param("policy", {"enum": ["low", "most", "select"]}, "GEdge's route", "path")
        token = Param("token", {"type": "string"}, "the GEdge door's token", "path")
        summary = "GEdge {}: a scheduling request in GEdge's own shape (the GEdge door)"
        front = summary.format("v4 front server (multipart yaml_file + form fields)")
        gateway = summary.format("gm-center forwarding (query string + YAML body)")
        answers = ((400, DoorRefusal), (409, DoorRefusal))
        return [
            Operation("POST", FRONT_SERVER, self.front_server, front, DoorAnswer, (policy,),
                      reads=False, status=202, answers=answers, errors=(401, 413)),
            Operation("POST", PATH_TOKEN + FRONT_SERVER, self.front_server, front, DoorAnswer,
                      (token, policy), reads=False, status=202, answers=answers,
                      errors=(401, 413)),
            Operation("POST", GATEWAY, self.gateway, gateway, DoorAnswer, reads=False,
                      status=202, answers=answers, errors=(401, 413)),
            Operation("POST", PATH_TOKEN + GATEWAY, self.gateway, gateway, DoorAnswer, (token,),
                      reads=False, status=202, answers=answers, errors=(401, 413)),
        ]  # fmt: skip

    # --- the two shapes --------------------------------------------------------------------

    async def front_server(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        form = await request.post()  # bounded by the app's client_max_size (413)
        fields: dict[str, str] = {}
        yaml_text: bytes | None = None
        for name in form:
            values = form.getall(name)
            if len(values) > 1:
                return self._bad(DoorError(name, "is given more than once"))
            value = values[0]
            if name == "yaml_file":
                yaml_text = value.file.read() if isinstance(value, web.FileField) else None
                if yaml_text is None:
                    return self._bad(DoorError(name, "must be a file upload (multipart)"))
            elif isinstance(value, str):
                fields[name] = value
            else:
                return self._bad(DoorError(name, "must be a form field, not a file"))
        if yaml_text is None:
            return self._bad(DoorError("yaml_file", "is required: the workload's YAML"))
        try:
            translated = front_server_request(
                request.match_info["policy"], fields, yaml_text, self._limits
            )
        except DoorError as exc:
            return self._bad(exc)
        return await self._submit(translated)

    async def gateway(self, request: web.Request) -> web.StreamResponse:
        self._authorise(request)
        query: dict[str, str] = {}
        for name in request.query:
            values = request.query.getall(name)
            if len(values) > 1:
                return self._bad(DoorError(name, "is given more than once"))
            query[name] = values[0]
        try:
            translated = gateway_request(query, await request.read(), self._limits)
        except DoorError as exc:
            return self._bad(exc)
        return await self._submit(translated)

    # --- shared ----------------------------------------------------------------------------

    def _authorise(self, request: web.Request) -> None:
        given = request.match_info.get("token")
        if given is None:
            given = request.headers.get(self._config.token_header)
        if given is None:
            scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
            given = bearer if scheme.lower() == "bearer" and bearer else None
        if given is None:
            raise ApiError(401, "the GEdge door needs its token: 'Authorization: Bearer …', the"
                           f" header {self._config.token_header}, or the path /gedge/<token>/…",
                           {"WWW-Authenticate": 'Bearer realm="gsch-gedge"'})  # fmt: skip
        # Constant time: the comparison must not tell how much of a guess was right.
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise ApiError(401, "the token is not the GEdge door's token")

    def _bad(self, exc: DoorError) -> web.Response:
        reason = f"{exc.field}: {exc.problem}"
        sequence = self._projector.last_seq
        return _refusal(400, "InvalidRequestContentException", reason, sequence, field=exc.field)

    def _request_id(self, client_id: str | None) -> str:
        """The client's id, or (`fresh_ids`, or none given) one of gsch's own; a minted id
        keeps a valid client id as its prefix, so logs and callbacks can be matched."""
        if client_id is not None and not self._config.fresh_ids:
            return client_id
        suffix = uuid.uuid4().hex
        if client_id is not None and REQUEST_ID_PATTERN.match(f"{client_id}-{suffix[:12]}"):
            return f"{client_id}-{suffix[:12]}"
        return f"req-{uuid.UUID(suffix)}"  # GEdge's own form: req-<uuid4>

    async def _submit(self, translated: Translated) -> web.Response:
        client_id = translated.client_request_id
        request_id = self._request_id(client_id)
        body = dict(translated.body, request_id=request_id)
        try:
            ack = await self._store.publish_intake(msgspec.json.encode(body), request_id)
            verdict = await intake_verdict(
                self._store, request_id, ack.seq, self._config.verdict_wait
            )
        except (TimeoutError, nats.errors.Error) as exc:
            raise ApiError(503, f"the event log is unreachable: {exc!r}") from None
        sequence = self._projector.last_seq
        if isinstance(verdict, RequestIdConflict):
            return _refusal(409, "InvalidRequestContentException", verdict.reason, sequence,
                            field="requestId", request_id=request_id)  # fmt: skip
        if verdict is not None and verdict.state is State.REJECTED:
            reason = verdict.reasons[-1] if verdict.reasons else "rejected"
            field = reason.partition(":")[0]
            return _refusal(400, "InvalidRequestContentException", reason,
                            max(sequence, verdict.last_seq), field=field,
                            request_id=request_id)  # fmt: skip
        first = verdict.accepted_seq if verdict is not None else None
        answer = DoorAnswer(
            result=f"request_id:{request_id}",
            request_id=request_id,
            client_request_id=client_id if client_id != request_id else None,
            state=verdict.state.value if verdict is not None else None,
            event_sequence=first or None,
            sequence=max(sequence, first or 0),
        )
        response = json_response(answer, answer.sequence, status=202)
        response.headers["Location"] = f"/v1/requests/{request_id}"
        return response


def door_token(config: GedgeConfig) -> str | None:
    """The door's token (None: the door is off). An empty token file stops the process."""
    if config.token_file is None:
        return None
    token = read_secret(config.token_file)
    if not token:
        raise ConfigError(f"gedge.token_file {config.token_file}: the file is empty")
    return token


def gedge_door(config: Config, store: EventStore, projector: Projector) -> GedgeDoor | None:
    """The door as `config` sets it up, or None when `[gedge] token_file` is not set."""
    token = door_token(config.gedge)
    if token is None:
        return None
    limits = DocumentLimits(max_documents=config.intake.max_documents)
    return GedgeDoor(store, projector, config.gedge, token, limits)
