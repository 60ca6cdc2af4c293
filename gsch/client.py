"""Client side of gsch: publish requests to gsch.requests and read the HTTP API."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from gsch.eventstore.intake import PUBLISH_TIMEOUT, IntakeAck, publish_intake
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import CANCEL_SUBJECT, ConflictKey
from gsch.model.events import RequestIdConflict
from gsch.model.states import RequestState


class ApiError(Exception):
    """The API answered with an error; the message carries its reason, `status` its HTTP
    status (None: no answer at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnreachable(ApiError):
    """Nothing answered at the API's address; the message says what happened."""


# Reads may wait for the read model (`min_seq`, at most `api.max_wait`, 10 s by default).
API_TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=5.0)


async def publish_request(
    nc: Client, body: bytes, request_id: str | None, *, patience: float = 60.0
) -> int:
    """Publish one request (see `publish_request_acked`); returns its intake sequence."""
    return (await publish_request_acked(nc, body, request_id, patience=patience)).seq


async def publish_request_acked(
    nc: Client, body: bytes, request_id: str | None, *, patience: float = 60.0
) -> IntakeAck:
    """Publish one request; JetStream's acknowledgement means it will settle. The request
    id doubles as the de-duplication id (and is the request's id when the body names none),
    which makes it safe to publish again when no acknowledgement came (a server restarting,
    a cluster electing a new leader): the stream keeps one copy. Without an id a retry could
    duplicate the request, so it is not retried."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await publish_intake(nc, body, request_id)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            if request_id is None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def intake_verdict(
    store: EventStore, request_id: str, intake_seq: int, timeout: float
) -> RequestState | RequestIdConflict | None:
    """What a worker made of intake message `intake_seq`: the request's state once its
    history comes from that message (accepted or rejected), the conflict that refused it (the
    id was taken by another body), or None when no worker answered within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        state = await store.load_request(request_id)
        if state.intake_seq == intake_seq:
            return state
        for stored in await store.read(ConflictKey(request_id).history):
            event = stored.event
            if isinstance(event, RequestIdConflict) and event.intake_seq == intake_seq:
                return event
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)


async def publish_cancel(
    nc: Client, request_id: str, reason: str, *, before_arrival: bool = True
) -> int:
    """Put a cancel command on `gsch.cancel` (what a submitter may do); the workers carry
    it out (`before_arrival`: also for an id the log does not know yet). Returns its intake
    sequence."""
    command = {"request_id": request_id, "reason": reason, "before_arrival": before_arrival}
    body = msgspec.json.encode(command)
    ack = await nc.jetstream().publish(CANCEL_SUBJECT, body, timeout=PUBLISH_TIMEOUT)
    return int(ack.seq)


async def api_get(base_url: str, path: str, **params: Any) -> Any:
    return await _call("GET", base_url, path, params=params or None)


async def api_post(base_url: str, path: str, body: bytes, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await _call("POST", base_url, path, data=body, headers=headers)


async def _call(method: str, base_url: str, path: str, **options: Any) -> Any:
    try:
        async with (
            aiohttp.ClientSession(timeout=API_TIMEOUT) as session,
            session.request(method, base_url.rstrip("/") + path, **options) as response,
        ):
            body = await response.read()
            status = response.status
    except aiohttp.ClientConnectorError as exc:
        code = exc.os_error.errno
        raise ApiUnreachable(os.strerror(code).lower() if code else str(exc.os_error)) from None
    except aiohttp.ClientError as exc:
        raise ApiUnreachable(str(exc) or "the connection failed") from None
    except TimeoutError:
        raise ApiUnreachable(f"no answer within {API_TIMEOUT.total:g} s") from None
    if status >= 400:
        try:
            reason = msgspec.json.decode(body)["error"]["reason"]
        except (msgspec.DecodeError, KeyError, TypeError):
            reason = body.decode(errors="replace")[:200]
        raise ApiError(f"{status}: {reason}", status)
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ApiUnreachable(f"the answer was not JSON: {body[:80]!r}") from None
