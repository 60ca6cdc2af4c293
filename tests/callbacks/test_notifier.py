"""The notifier against a real nats-server and a real (or absent) HTTP receiver: what it
does when the receiver never answers, and when the host is not (or no longer) allowed."""

from __future__ import annotations

import asyncio
import socket

from gsch.callbacks.notifier import Notifier
from gsch.eventstore.store import EventStore, Write
from gsch.eventstore.subjects import CallbackKey, RequestKey
from gsch.model.events import (
    CallbackFailed,
    Placement,
    RequestAccepted,
    RequestBound,
    RequestRejected,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.runtime.config import CallbacksConfig


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _bound(store: EventStore, request_id: str, url: str) -> None:
    request = Request(request_id=request_id, policy=Policy.SELECTED_CLUSTER, mode="cluster",
                      levels=(("c1",),), callback_url=url)  # fmt: skip
    placement = Placement("c1", "n1", Resources())
    await store.append(Write(RequestKey(request_id), (
        RequestAccepted(at=1, request=request, intake_seq=1, level=QueueLevel.BASE),
        RequestBound(at=2, attempt=1, placements=(placement,)),
    )))  # fmt: skip


async def _failures(store: EventStore, request_id: str, count: int) -> list[CallbackFailed]:
    async with asyncio.timeout(20):
        while True:
            found = [s.event for s in await store.read(CallbackKey(request_id).history)]
            failed = [e for e in found if isinstance(e, CallbackFailed)]
            if len(failed) >= count:
                return failed
            await asyncio.sleep(0.05)


async def test_an_unreachable_receiver_is_retried_then_given_up(store: EventStore) -> None:
    config = CallbacksConfig(allowed_hosts=["127.0.0.1"], max_attempts=3, backoff_base=0.05,
                             timeout=1.0)  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(Notifier(store, config).run(stop))
    try:
        await _bound(store, "cb-1", f"http://127.0.0.1:{_closed_port()}/cb")
        failed = await _failures(store, "cb-1", 3)
    finally:
        stop.set()
        await running
    assert [f.attempt for f in failed] == [1, 2, 3]
    assert [f.final for f in failed] == [False, False, True]
    assert failed[0].retry_after > 0
    assert all(f.state == "bound" and "could not reach" in f.error for f in failed)


async def test_a_host_no_longer_allowed_is_never_called(store: EventStore) -> None:
    stop = asyncio.Event()
    notifier = Notifier(store, CallbacksConfig(allowed_hosts=["hooks.example.org"]))
    running = asyncio.create_task(notifier.run(stop))
    try:
        await store.append(Write(RequestKey("cb-2"), (RequestRejected(
            at=1, request_id="cb-2", reason="policy: unknown", callback_url="http://127.0.0.1/x"
        ),)))  # fmt: skip
        (failed,) = await _failures(store, "cb-2", 1)
    finally:
        stop.set()
        await running
    assert failed.final
    assert failed.state == "rejected"
    assert "not on [callbacks] allowed_hosts" in failed.error
