"""Client side of gsch: publish requests to gsch.requests and read the HTTP API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from gsch.eventstore.intake import PUBLISH_TIMEOUT, publish_intake
from gsch.scheduler.cancel import CANCEL_SUBJECT


class ApiError(Exception):
    """The API answered with an error; the message carries its reason."""


async def publish_request(
    nc: Client, body: bytes, request_id: str | None, *, patience: float = 60.0
) -> int:
    """Publish one request; JetStream's acknowledgement means it will settle. Returns the
    intake sequence. The request id doubles as the de-duplication id, which makes it safe
    to publish again when no acknowledgement came (a server restarting, a cluster electing
    a new leader): the stream keeps one copy. Without an id a retry could duplicate the
    request, so it is not retried."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return (await publish_intake(nc, body, request_id)).seq
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            if request_id is None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def publish_cancel(nc: Client, request_id: str, reason: str) -> int:
    """Put a cancel command on `gsch.cancel` (what a submitter may do); the workers carry
    it out. Returns its intake sequence."""
    body = msgspec.json.encode({"request_id": request_id, "reason": reason})
    ack = await nc.jetstream().publish(CANCEL_SUBJECT, body, timeout=PUBLISH_TIMEOUT)
    return int(ack.seq)


async def api_get(base_url: str, path: str, **params: Any) -> Any:
    return await _call("GET", base_url, path, params=params or None)


async def api_post(base_url: str, path: str, body: bytes) -> Any:
    return await _call("POST", base_url, path, data=body)


async def _call(method: str, base_url: str, path: str, **options: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base_url.rstrip("/") + path, **options) as response,
    ):
        body = await response.read()
        if response.status >= 400:
            try:
                reason = msgspec.json.decode(body)["error"]["reason"]
            except (msgspec.DecodeError, KeyError, TypeError):
                reason = body.decode(errors="replace")[:200]
            raise ApiError(f"{response.status}: {reason}")
        return msgspec.json.decode(body)
