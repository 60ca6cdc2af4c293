"""Queue management against a real nats-server: retry levels, blocked requests woken by
capacity, cancellation in every state, consumers deleted under a running worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import nats

from gsch.audit import audit
from gsch.client import publish_request
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import CANCEL_SUBJECT, request_history
from gsch.model.events import RequestAccepted, RequestFailed, RequestRequeued
from gsch.model.states import State
from gsch.runtime.config import Config, load_config
from gsch.scheduler.cancel import cancel_request
from tests.support.pipeline import SMALL_FLEET, pod_request, running
from tests.support.waits import eventually


def small_config(tmp_path: Path, url: str, **queue: object) -> Config:
    topology = tmp_path / "fleet.toml"
    topology.write_text(SMALL_FLEET)
    return load_config(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "nats": {"url": url},
            "api": {"listen": "127.0.0.1:0"},
            "queue": {
                "backoff_base": 0.05,
                "backoff_max": 0.1,
                "lease_seconds": 5,
                "blocked_recheck_seconds": 60,
                **queue,
            },
            "simulator": {"topology": str(topology), "bind_delay": 0.001},
        },
        environ={},
    )


def pod(request_id: str, cpu: str, **fields: Any) -> bytes:
    return pod_request(request_id, ["solo"], cpu, **fields)


async def publish(url: str, *bodies: tuple[str, bytes]) -> None:
    nc = await nats.connect(url)
    try:
        for request_id, body in bodies:
            await publish_request(nc, body, request_id)
    finally:
        await nc.close()


async def wait_state(store: EventStore, request_id: str, *states: State) -> None:
    async def reached() -> bool:
        return (await store.load_request(request_id)).state in states

    await eventually(reached)


async def test_fast_flag_survives_retries_until_k_star_promotes_to_first(
    tmp_path: Path, nats_server: Any
) -> None:
    config = small_config(tmp_path, nats_server.url)
    # Pinned to a node whose taint it does not tolerate: no capacity can help, so it is
    # retried with backoff (not parked) and fails after Z* = 5 failures.
    body = pod("fast-1", "100m", fast=True, policy="GSelectedCluster", mode="node",
               select_cluster="solo", select_node="solo-gpu")  # fmt: skip
    body = msgspec.json.encode(
        {k: v for k, v in msgspec.json.decode(body).items() if k != "select_clusters"}
    )
    async with running(config, {"worker", "binder"}) as service:
        await publish(nats_server.url, ("fast-1", body))
        await wait_state(service.store, "fast-1", State.FAILED)
        events = [s.event for s in await service.store.read(request_history("fast-1"))]
    requeued = [e for e in events if isinstance(e, RequestRequeued)]
    # K* = 2: failures 1 and 2 keep the Fast level; from the third the request is First.
    assert [e.level.value for e in requeued] == ["fast", "fast", "first", "first", "first"]
    assert not any(e.blocked for e in requeued)
    accepted = next(e for e in events if isinstance(e, RequestAccepted))
    assert accepted.level.value == "fast"
    failed = events[-1]
    assert isinstance(failed, RequestFailed)
    assert len(failed.reasons) == 6
    assert all("untolerated taint" in r for r in failed.reasons)


async def test_blocked_request_waits_without_polling_and_runs_when_capacity_is_freed(
    tmp_path: Path, nats_server: Any
) -> None:
    config = small_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder"}) as service:
        store = service.store
        await publish(nats_server.url, ("big-1", pod("big-1", "1500m")))
        await wait_state(store, "big-1", State.BOUND)
        await publish(nats_server.url, ("big-2", pod("big-2", "1500m")))

        async def parked() -> bool:
            events = await store.read(request_history("big-2"))
            return any(isinstance(s.event, RequestRequeued) for s in events)

        await eventually(parked)
        history = await store.read(request_history("big-2"))
        requeued = history[-1].event
        assert isinstance(requeued, RequestRequeued)
        assert requeued.blocked
        assert "insufficient cpu" in requeued.reason
        # Parked: nothing is appended while nothing changes (backoff here is 0.1 s, so a
        # polling retry would have written several attempts by now).
        await asyncio.sleep(1.5)
        assert len(await store.read(request_history("big-2"))) == len(history)
        # Cancelling the bound request releases its capacity, which wakes big-2.
        outcome = await cancel_request(store, "big-1", "make room")
        assert outcome.cancelled
        assert outcome.previous_state == "bound"
        await wait_state(store, "big-2", State.BOUND)
        state = await store.load_request("big-2")
        assert state.attempt == 2  # woken once, placed at once: no attempt was wasted
        report = await audit(store)
        assert report.ok, report.summary()
        assert report.states == {"bound": 1, "cancelled": 1}


async def test_cancel_in_every_state_and_through_the_nats_subject(
    tmp_path: Path, nats_server: Any
) -> None:
    config = small_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder"}) as service:
        store = service.store
        # Not known yet: the tombstone keeps it from ever being scheduled.
        ghost = await cancel_request(store, "ghost-1", "changed my mind")
        assert ghost.cancelled
        assert ghost.previous_state == "new"
        await publish(nats_server.url, ("ghost-1", pod("ghost-1", "100m")),
                      ("held-1", pod("held-1", "1500m")),
                      ("waits-1", pod("waits-1", "1500m")))  # fmt: skip
        await wait_state(store, "held-1", State.BOUND)

        async def waits_parked() -> bool:
            state = await store.load_request("waits-1")
            return state.state is State.QUEUED and state.attempt == 2

        await eventually(waits_parked)
        # A parked (blocked) request, cancelled through the NATS subject.
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.publish(CANCEL_SUBJECT, b'{"request_id": "waits-1", "reason": "by subject"}')
        await js.publish(CANCEL_SUBJECT, b"\x00 not json")  # refused, nothing stops
        await js.publish(CANCEL_SUBJECT, b'{"request_id": "../etc"}')
        await nc.close()
        await wait_state(store, "waits-1", State.CANCELLED)
        # A bound request: its capacity is released in the same batch.
        outcome = await cancel_request(store, "held-1", "done with it")
        assert outcome.cancelled
        assert outcome.previous_state == "bound"
        # Final: a clear no-op.
        again = await cancel_request(store, "held-1", "twice")
        assert not again.cancelled
        assert again.message.startswith("already cancelled")
        # The worker is still serving after the garbage on gsch.cancel.
        await publish(nats_server.url, ("after-1", pod("after-1", "1500m")))
        await wait_state(store, "after-1", State.BOUND)
        report = await audit(store)
        ghost_events = [
            type(s.event).__name__ for s in await store.read(request_history("ghost-1"))
        ]
    assert report.ok, report.summary()
    assert report.states == {"cancelled": 3, "bound": 1}
    # Published soon after its cancel: recorded and cancelled on arrival, never scheduled.
    assert ghost_events == ["CancelRecorded", "RequestAccepted", "RequestCancelled"]


async def test_consumer_deleted_under_a_running_worker_is_declared_again(
    tmp_path: Path, nats_server: Any
) -> None:
    config = small_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder"}) as service:
        store = service.store
        await publish(nats_server.url, ("before-1", pod("before-1", "100m")))
        await wait_state(store, "before-1", State.BOUND)
        await store.js.delete_consumer("GSCH_INTAKE", "gsch-intake")
        await publish(nats_server.url, ("after-1", pod("after-1", "100m")))
        await wait_state(store, "after-1", State.BOUND)
        info = await store.js.consumer_info("GSCH_INTAKE", "gsch-intake")
        assert info.config.filter_subject == "gsch.requests"
