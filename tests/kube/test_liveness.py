"""Agent liveness against a real nats-server: heartbeats in, readiness declarations out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from nats.aio.client import Client

from gsch.clusters.facts import declare
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ClusterKey, cluster_subject
from gsch.kube.envelope import (
    HCODE_HEARTBEAT,
    LCODE_NOTICE,
    Envelope,
    Heartbeat,
    Party,
    encode,
    heartbeat_subject,
    payload,
)
from gsch.kube.liveness import AgentLiveness
from gsch.model.events import ClusterDeclared
from tests.support.waits import eventually

SUBJECT = cluster_subject("ka", "ClusterDeclared")


@contextlib.asynccontextmanager
async def beating(nc: Client, ready: bool | None) -> AsyncIterator[None]:
    """Heartbeats of an agent of `ka` every 0.1 s while the block runs."""

    async def run() -> None:
        notice = Envelope(source=Party("cluster", "ka"), target=Party("cluster", "gsch-binder"),
                          hcode=HCODE_HEARTBEAT, lcode=LCODE_NOTICE,
                          msg=payload(Heartbeat(node="ka-n1", ready=ready)))  # fmt: skip
        while True:
            await nc.publish(heartbeat_subject("ka"), encode(notice))
            await asyncio.sleep(0.1)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def watchers(nc: Client, store: EventStore, count: int) -> AsyncIterator[None]:
    """`count` binders watching the agents of `ka`, as several binder processes would."""
    running = [AgentLiveness(nc, store, {"ka"}, interval=0.05, silence=0.6) for _ in range(count)]
    for watcher in running:
        await watcher.start()
    try:
        yield
    finally:
        for watcher in running:
            await watcher.stop()


async def declarations(store: EventStore) -> list[ClusterDeclared]:
    return [s.event for s in await store.read(SUBJECT) if isinstance(s.event, ClusterDeclared)]


async def test_a_silent_agent_makes_its_cluster_not_ready_once_and_ready_again(
    nc: Client, store: EventStore
) -> None:
    first = ClusterDeclared(at=time.time(), cluster="ka", tier="near-edge",
                            labels={"region": "kr"}, endpoint="10.0.0.1:6443")  # fmt: skip
    await declare(store, ClusterKey("ka"), first)
    async with watchers(nc, store, 3):
        async with beating(nc, ready=True):
            await asyncio.sleep(1.0)  # longer than the silence period: beats keep it ready
            assert [d.ready for d in await declarations(store)] == [True]

        async def ready_is(wanted: bool, count: int) -> bool:
            found = await declarations(store)
            return len(found) == count and found[-1].ready is wanted

        await eventually(lambda: ready_is(False, 2), timeout=10)
        async with beating(nc, ready=True):
            await eventually(lambda: ready_is(True, 3), timeout=10)
            await asyncio.sleep(0.3)  # three watchers, yet one declaration per change
        found = await declarations(store)
        assert [d.ready for d in found][:3] == [True, False, True]
        for declared in found:  # identity kept as the cluster last declared it
            assert (declared.tier, declared.labels, declared.endpoint) == (
                "near-edge", {"region": "kr"}, "10.0.0.1:6443",
            )  # fmt: skip


async def test_a_not_ready_the_agent_declared_itself_is_not_undone(
    nc: Client, store: EventStore
) -> None:
    # The agent's API server is unreachable: it said so itself. A beat claiming ready (sent
    # just before) must not overrule that; only the watch's own declarations are undone.
    own = ClusterDeclared(at=time.time(), cluster="ka", tier="edge", ready=False)
    await declare(store, ClusterKey("ka"), own)
    async with watchers(nc, store, 1), beating(nc, ready=True):
        await asyncio.sleep(0.8)
    assert [d.ready for d in await declarations(store)] == [False]


async def test_the_last_heartbeat_is_exported_for_the_agent_silent_alert(
    nc: Client, store: EventStore
) -> None:
    """gsch_agent_last_heartbeat_timestamp_seconds: the binder's start before the first beat
    (so a never-heard agent ages from then), then the time of each beat."""
    from prometheus_client import REGISTRY

    def last() -> float:
        value = REGISTRY.get_sample_value(
            "gsch_agent_last_heartbeat_timestamp_seconds", {"member_cluster": "ka"}
        )
        assert value is not None
        return value

    before = time.time()
    async with watchers(nc, store, 1):
        started = last()
        assert before <= started <= time.time()
        await asyncio.sleep(0.3)
        assert last() == started  # silence: the timestamp does not move
        async with beating(nc, ready=True):
            await eventually(lambda: last() > started + 0.2)
