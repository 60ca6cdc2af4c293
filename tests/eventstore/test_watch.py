"""A Follower keeps delivering, in order and once, across a restart of the server."""

from __future__ import annotations

import asyncio

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
