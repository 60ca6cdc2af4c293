"""Acknowledgements of an outbox go with the connection's next write, or on their own once
their window has passed; in order, and none is held back at close."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client

from gsch.eventstore.wire import Outbox


class CountedWrites:
    """Counts the connection's socket writes (each flush of its buffer is one)."""

    def __init__(self, nc: Client) -> None:
        self.count = 0
        transport = nc._transport
        original = transport.writelines

        def writelines(commands: list[bytes]) -> Any:
            self.count += 1
            return original(commands)

        transport.writelines = writelines


async def received(nc: Client, subject: str) -> list[bytes]:
    got: list[bytes] = []

    async def on_message(msg: Any) -> None:
        got.append(msg.data)

    await nc.subscribe(subject, cb=on_message)
    await nc.flush()
    return got


async def wait_for(got: list[bytes], count: int, seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while len(got) < count:
            await asyncio.sleep(0.01)


async def test_they_go_with_the_connection_s_next_write(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    writes = CountedWrites(nc)
    outbox = Outbox(nc, window=60)
    for index in range(3):
        await outbox.publish("gsch.test.outbox", str(index).encode())
        await asyncio.sleep(0)  # each on a turn of its own, as acknowledgements come
    await asyncio.sleep(0.05)
    assert (writes.count, got) == (0, [])  # nothing written of its own accord
    await nc.publish("gsch.test.outbox", b"other")
    await wait_for(got, 4, seconds=1)
    assert got == [b"0", b"1", b"2", b"other"]
    assert writes.count == 1
    outbox.close()


async def test_alone_they_go_once_their_window_has_passed(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    writes = CountedWrites(nc)
    outbox = Outbox(nc, window=0.2)
    await outbox.publish("gsch.test.outbox", b"0")
    await outbox.publish("gsch.test.outbox", b"1")
    await asyncio.sleep(0.05)
    assert got == []
    await wait_for(got, 2, seconds=2)
    assert got == [b"0", b"1"]
    assert writes.count == 1


async def test_nothing_is_held_back_at_close(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    outbox = Outbox(nc, window=60)
    await outbox.publish("gsch.test.outbox", b"waiting")  # would wait a minute
    outbox.close()
    await wait_for(got, 1, seconds=1)  # not when something else next writes
    assert got == [b"waiting"]
