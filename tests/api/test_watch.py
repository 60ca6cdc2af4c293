"""Change feeds over SSE: follow a request to its final state, resume, heartbeats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from gsch.eventstore.store import EventStore
from gsch.runtime.config import ApiConfig
from tests.support.api import Api, app_over
from tests.support.scenario import Log, write_scenario


class Feed:
    """The messages and comments of one SSE response, parsed as a browser would."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message (None at the end of the stream); comments are collected."""
        fields: dict[str, Any] = {}
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif line == "":
                    if "data" in fields:
                        fields["data"] = msgspec.json.decode(fields["data"])
                        return fields
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value


async def test_follow_one_request_to_its_final_state(api: Api) -> None:
    response = await api.client.get("/v1/requests/req-queued/watch")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    feed = Feed(response)
    first = await feed.next()
    assert first is not None
    assert (first["event"], first["data"]["state"], first["data"]["final"]) == (
        "RequestAccepted", "queued", False
    )  # fmt: skip
    assert first["id"] == str(first["data"]["seq"])
    await api.log.accept("someone-else")  # other requests do not show on this feed
    await api.log.claim("req-queued")
    await api.log.commit("req-queued", "c1", "n1")
    await api.log.bind("req-queued", "c1", "n1")
    await api.log.finish("req-queued")
    seen = []
    while (message := await feed.next()) is not None:
        seen.append((message["event"], message["data"]["state"], message["data"]["final"]))
        assert message["data"]["request_id"] == "req-queued"
    assert seen == [
        ("RequestClaimed", "scheduling", False),
        ("PlacementCommitted", "scheduled", False),
        ("RequestBound", "bound", False),
        ("WorkloadFinished", None, True),
    ]  # the stream ended after the final event


async def test_a_rejected_request_ends_at_once(api: Api) -> None:
    feed = Feed(await api.client.get("/v1/requests/req-rejected/watch"))
    message = await feed.next()
    assert message is not None
    assert (message["event"], message["data"]["final"]) == ("RequestRejected", True)
    assert await feed.next() is None


async def test_watch_everything_and_resume(api: Api) -> None:
    feed = Feed(await api.client.get("/v1/watch"))
    await api.log.claim("req-queued")
    second = await api.log.accept("new-one")
    messages = [await feed.next(), await feed.next()]
    assert [(m["event"], m["data"]["request_id"]) for m in messages if m] == [
        ("RequestClaimed", "req-queued"), ("RequestAccepted", "new-one")
    ]  # fmt: skip
    feed.response.close()
    assert messages[0] is not None
    # Reconnect as EventSource does: after the last id seen, nothing is lost or repeated.
    resumed = Feed(await api.client.get("/v1/watch", headers={"Last-Event-ID": messages[0]["id"]}))
    again = await resumed.next()
    assert again is not None
    assert (again["data"]["seq"], again["data"]["request_id"]) == (second, "new-one")
    history = Feed(await api.client.get("/v1/watch?after=0"))
    oldest = await history.next()
    assert oldest is not None
    assert oldest["data"]["request_id"] == "req-bound"


async def test_heartbeats_on_an_idle_feed(store: EventStore, tmp_path: Path) -> None:
    last = await write_scenario(Log(store))
    config = ApiConfig(watch_heartbeat=0.1, watch_max_seconds=1.0)
    async with app_over(store, tmp_path / "m.sqlite", last, config=config) as client:
        feed = Feed(await client.get("/v1/watch"))
        assert await feed.next(timeout=10) is None  # ends after watch_max_seconds
    assert feed.comments.count(f"heartbeat {last}") >= 3


async def test_watch_errors(api: Api) -> None:
    for path, headers, status, words in [
        ("/v1/requests/nope/watch", {}, 404, "no request 'nope'"),
        ("/v1/watch", {"Last-Event-ID": "x1"}, 400, "Last-Event-ID"),
        ("/v1/watch?after=-1", {}, 400, "'after' must be between 0"),
        ("/v1/watch?follow=1", {}, 400, "unknown query parameter 'follow'"),
    ]:
        response = await api.client.get(path, headers=headers)
        body = await response.json()
        assert response.status == status, body
        assert words in body["error"]["reason"]


async def test_a_feed_asked_for_a_sequence_out_of_reach_says_it_starts_stale(
    store: EventStore, tmp_path: Path
) -> None:
    last = await write_scenario(Log(store))
    config = ApiConfig(max_wait=0.1, watch_heartbeat=0.1, watch_max_seconds=0.3)
    async with app_over(store, tmp_path / "m.sqlite", last, config=config) as client:
        response = await client.get(f"/v1/watch?min_seq={last + 50}")
        assert response.status == 200
        assert response.headers["X-Gsch-Stale"] == "true"
        assert await Feed(response).next() is None
