"""Messages of an outbox share writes: the first after a quiet spell goes at once, the ones
that follow within the window go together, in order, and none is held back at close."""

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


async def test_messages_within_the_window_share_one_write(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    writes = CountedWrites(nc)
    outbox = Outbox(nc, window=0.5)
    await outbox.publish("gsch.test.outbox", b"0")
    await asyncio.sleep(0.01)
    assert writes.count == 1  # the first after a quiet spell goes at once
    for index in range(1, 6):
        await outbox.publish("gsch.test.outbox", str(index).encode())
        await asyncio.sleep(0)  # each on a turn of its own, as a binder's outcomes come
    assert writes.count == 1
    await wait_for(got, 6)
    assert got == [str(index).encode() for index in range(6)]
    assert writes.count == 2


async def test_after_a_quiet_spell_a_message_goes_at_once(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    outbox = Outbox(nc, window=0.05)
    await outbox.publish("gsch.test.outbox", b"first")
    await asyncio.sleep(0.1)
    writes = CountedWrites(nc)
    await outbox.publish("gsch.test.outbox", b"second")
    await asyncio.sleep(0.01)
    assert writes.count == 1
    await wait_for(got, 2)


async def test_nothing_is_held_back_at_close(nc: Client) -> None:
    got = await received(nc, "gsch.test.outbox")
    outbox = Outbox(nc, window=60)
    await outbox.publish("gsch.test.outbox", b"first")
    await asyncio.sleep(0.01)
    await outbox.publish("gsch.test.outbox", b"waiting")  # would wait a minute
    outbox.close()
    await wait_for(got, 2, seconds=1)  # not when something else next writes
    assert got == [b"first", b"waiting"]
