"""Pull loops hand each message on as it arrives, within the room they were given."""

from __future__ import annotations

import asyncio

from gsch.eventstore.consumers import Room, WorkItem, pull
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import INTAKE_STREAM, INTAKE_SUBJECT

INTAKE_CONSUMER = "gsch-intake"


async def test_a_message_on_a_quiet_queue_is_delivered_before_its_pull_expires(
    store: EventStore,
) -> None:
    """nats-py's fetch(128) on an empty queue returned its first message only when 127 more
    had come or the fetch timed out: an idle worker held a new request for the whole
    timeout. A pull asks for 128 over 30 s here: the message is handed on while that pull
    request is still waiting on the server for the other 127."""
    stop = asyncio.Event()
    delivered: list[WorkItem] = []
    waiting: list[int] = []
    arrived = asyncio.Event()

    async def deliver(item: WorkItem) -> None:
        info = await store.js.consumer_info(INTAKE_STREAM, INTAKE_CONSUMER)
        waiting.append(info.num_waiting)
        delivered.append(item)
        await item.ack()
        arrived.set()

    loop = asyncio.create_task(
        pull(store, INTAKE_STREAM, INTAKE_CONSUMER, deliver, stop,
             room=Room(1000), batch=128, expires=30.0)
    )  # fmt: skip
    try:
        await asyncio.sleep(0.3)  # the pull request is out and finds nothing
        await store.nc.jetstream().publish(INTAKE_SUBJECT, b"one")
        await asyncio.wait_for(arrived.wait(), 10.0)
        await store.nc.jetstream().publish(INTAKE_SUBJECT, b"two")
        await asyncio.wait_for(_until(lambda: len(delivered) == 2), 10.0)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 40.0)
    assert [item.data for item in delivered] == [b"one", b"two"]
    assert waiting[0] == 1  # still open: the message did not wait for the batch


async def test_a_pull_takes_no_more_than_its_room(store: EventStore) -> None:
    js = store.nc.jetstream()
    for index in range(10):
        await js.publish(INTAKE_SUBJECT, f"m{index}".encode())
    stop = asyncio.Event()
    room = Room(3)
    held: list[WorkItem] = []

    async def deliver(item: WorkItem) -> None:
        room.take()
        held.append(item)

    loop = asyncio.create_task(
        pull(store, INTAKE_STREAM, INTAKE_CONSUMER, deliver, stop, room=room, batch=128)
    )
    try:
        await asyncio.wait_for(_until(lambda: len(held) == 3), 10.0)
        await asyncio.sleep(0.5)
        assert len(held) == 3  # no room: nothing more is asked for
        for item in held[:2]:
            await item.ack()
            room.give()
        await asyncio.wait_for(_until(lambda: len(held) == 5), 10.0)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10.0)
    assert [item.data for item in held] == [f"m{i}".encode() for i in range(5)]


async def _until(condition: object) -> None:
    assert callable(condition)
    while not condition():
        await asyncio.sleep(0.02)
