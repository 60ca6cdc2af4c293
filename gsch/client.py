"""Client side of gsch: publish requests to gsch.requests and read the HTTP API."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

from gsch.eventstore.subjects import INTAKE_SUBJECT


class ApiError(Exception):
    """The API answered with an error; the message carries its reason."""


async def publish_request(nc: Client, body: bytes, request_id: str | None) -> int:
    """Publish one request; JetStream's acknowledgement means it will settle. Returns the
    intake sequence."""
    ack = await publish_intake(nc.jetstream(), body, request_id)
    return int(ack.seq)


async def publish_intake(js: JetStreamContext, body: bytes, request_id: str | None) -> PubAck:
    """The request id doubles as the de-duplication id (`ack.duplicate` within the window)."""
    headers = {"Nats-Msg-Id": request_id} if request_id else None
    return await js.publish(INTAKE_SUBJECT, body, headers=headers, timeout=10)


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
