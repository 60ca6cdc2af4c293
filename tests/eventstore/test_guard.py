"""A process that finds the event log missing, or behind what it derived, stops with a clear
error; it never re-creates an empty log nor wipes its read model (issue 11)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import nats.js.errors
import pytest
from nats.aio.client import Client

from gsch.eventstore.guard import LogBehindError, LogGuard, LogReplacedError
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import StreamMissingError, apply_declarations, load_declarations
from gsch.model.states import State
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import Running, serve
from tests.support.pipeline import (
    declare_streams,
    make_config,
    pod_request,
    publish_all,
    running,
)
from tests.support.waits import eventually


async def log_exists(nc: Client) -> bool:
    try:
        await nc.jetstream().stream_info("GSCH_EVENTS")
    except nats.js.errors.NotFoundError:
        return False
    return True


async def test_a_process_does_not_create_a_missing_log(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client
) -> None:
    config = make_config(tmp_path, nats_server.url)
    with pytest.raises(StreamMissingError, match="gsch streams apply"):
        await asyncio.wait_for(serve(config, {"worker"}, asyncio.Event()), 30)
    assert not await log_exists(nc)


async def test_the_log_deleted_under_a_running_process_stops_it(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client
) -> None:
    config = make_config(tmp_path, nats_server.url)
    await declare_streams(nats_server.url)
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(config, {"worker", "binder", "api"}, asyncio.Event(), started=started)
    )
    service = await asyncio.wait_for(started, 60)
    await publish_all(nc, [("before-1", pod_request("before-1", ["edge-daejeon"]))])
    await eventually(lambda: _state(service.store, "before-1", State.BOUND), 30)
    await nc.jetstream().delete_stream("GSCH_EVENTS")
    with pytest.raises(StreamMissingError, match="GSCH_EVENTS does not exist"):
        await asyncio.wait_for(task, 30)
    assert not await log_exists(nc)


async def _state(store: EventStore, request_id: str, state: State) -> bool:
    return (await store.load_request(request_id)).state is state


async def test_an_api_restarted_on_a_recreated_log_keeps_its_read_model(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client
) -> None:
    """The attack: delete GSCH_EVENTS, let it be re-created empty; the next API start used
    to wipe the read model. Now it refuses to start and the read model is untouched."""
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder", "api"}) as service:
        await publish_all(nc, [("kept-1", pod_request("kept-1", ["edge-daejeon"]))])
        await eventually(lambda: _state(service.store, "kept-1", State.BOUND), 30)
        await asyncio.sleep(1.0)  # the projector applies it
    rows = _request_ids(config.database_path)
    assert "kept-1" in rows
    await nc.jetstream().delete_stream("GSCH_EVENTS")
    await apply_declarations(nc, load_declarations())  # an empty log of the same name
    with pytest.raises(LogBehindError, match="has already seen sequence"):
        await asyncio.wait_for(serve(config, {"api"}, asyncio.Event()), 30)
    assert _request_ids(config.database_path) == rows


def _request_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT id FROM requests")}


async def test_the_guard_notices_a_replaced_log(nats_server: EmbeddedNats, nc: Client) -> None:
    await apply_declarations(nc, load_declarations())
    guard = LogGuard(nc, lambda: 0, "a test")
    await guard.check()
    await nc.jetstream().delete_stream("GSCH_EVENTS")
    await apply_declarations(nc, load_declarations())
    with pytest.raises(LogReplacedError, match="was replaced while this process ran"):
        await guard.check()


def test_audit_refuses_a_missing_log(nats_server: EmbeddedNats) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gsch", "audit", "--nats", nats_server.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "GSCH_EVENTS does not exist" in done.stderr
    assert "requests" not in done.stdout  # no "0 requests" report
