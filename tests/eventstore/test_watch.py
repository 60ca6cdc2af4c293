"""A Follower keeps delivering, in order and once, across a restart of the server."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client

from gsch.eventstore.store import EventStore, StoredEvent, Write
from gsch.eventstore.subjects import ClusterKey
from gsch.eventstore.watch import Follower
from gsch.model.events import ClusterDeclared
from gsch.runtime.embedded import EmbeddedNats
from tests.support.waits import eventually


def declared(name: str) -> Write:
    event = ClusterDeclared(at=1.0, cluster=name, tier="edge")
    return Write(ClusterKey(name), (event,))


async def test_follower_survives_a_server_restart(
    nats_server: EmbeddedNats, nc: Client, store: EventStore
) -> None:
    seen: list[int] = []
    follower = Follower(store, "gsch.events.cluster.>", lambda e: seen.append(e.seq))
    await follower.start()
    try:
        await store.append(declared("c1"))
        await eventually(lambda: len(seen) == 1, 10)
        await nats_server.stop()
        await asyncio.sleep(1.0)
        await nats_server.start()
        await eventually(lambda: nc.is_connected, 15)
        for name in ("c2", "c3"):
            await store.append(declared(name))
        await eventually(lambda: len(seen) == 3, 20)
        assert seen == sorted(seen)
        assert len(set(seen)) == 3
    finally:
        await follower.stop()


async def test_follower_skips_what_it_cannot_decode_and_says_so(store: EventStore) -> None:
    skipped: list[int] = []
    seen: list[StoredEvent] = []
    follower = Follower(store, "gsch.events.cluster.>", seen.append, on_skip=skipped.append)
    await follower.start()
    try:
        ack = await store.js.publish("gsch.events.cluster.x.Junk", b"\x00junk")
        await store.append(declared("c9"))
        await eventually(lambda: len(seen) == 1, 10)
        assert skipped == [ack.seq]
        assert follower.last_seq == seen[0].seq
    finally:
        await follower.stop()


async def test_a_follower_only_behind_the_log_is_not_subscribed_again(store: EventStore) -> None:
    """A busy process (niced, or on a loaded machine) handles what the server sent late: it
    is behind, not stalled, and subscribing again would have the server send it all twice.
    Here the first delivery waits a second before it is handled, while the watchdog looks
    every 0.2 s."""
    seen: list[int] = []
    follower = Follower(store, "gsch.events.cluster.>", lambda e: seen.append(e.seq))
    follower._check_every = 0.2
    handle = follower._deliver

    async def late(msg: Any) -> None:
        if not seen:
            await asyncio.sleep(1.0)
        await handle(msg)

    follower._deliver = late  # type: ignore[method-assign]
    for name in ("c1", "c2", "c3"):
        await store.append(declared(name))
    await follower.start()
    try:
        await eventually(lambda: len(seen) == 3, 10)
        assert follower.resubscriptions == 0
        assert seen == sorted(set(seen))
    finally:
        await follower.stop()
