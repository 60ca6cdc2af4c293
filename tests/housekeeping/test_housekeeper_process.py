"""Housekeeping runs as its own identity: an installation of workers, binders and APIs on the
secured bus writes no snapshot and expires nothing by itself, and a standalone housekeeper
process (`gsch serve --roles housekeeper`, its own credentials and read model) does both."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp

from gsch.bus.roles import Role
from gsch.client import publish_cancel, publish_request
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.model.states import State
from gsch.runtime.config import Config, load_config
from gsch.runtime.connection import connect
from gsch.runtime.service import serve
from tests.support.bus import embedded_config
from tests.support.pipeline import pod_request, running
from tests.support.waits import eventually

HOUSEKEEPING = {
    "snapshots": {"interval": 0.2},
    "retention": {"finished_requests": 0.1, "interval": 0.2},
}


def housekeeper_of(config: Config, url: str, tmp_path: Path) -> Config:
    """A process of its own on the installation's server, with the housekeeper's seed from
    the bus directory the installation made."""
    return load_config(
        None,
        {
            "data_dir": str(tmp_path / "housekeeper"),
            "nats": {"url": url, "credentials_dir": str(config.data_path / "bus")},
            "metrics": {"listen": ""},
            **HOUSEKEEPING,
        },
        environ={},
    )


async def status_of(api_url: str, request_id: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api_url}/v1/requests/{request_id}") as answer,
    ):
        return answer.status


async def settle(store: EventStore, request_id: str, state: State) -> None:
    async def reached() -> bool:
        return (await store.load_request(request_id)).state is state

    await eventually(reached, 30)


async def test_only_the_housekeeper_keeps_house(tmp_path: Path) -> None:
    config = embedded_config(tmp_path, **HOUSEKEEPING)
    async with running(config, {"worker", "api", "binder"}) as service:
        user = await connect(config, service.nats_url, "a user", role=Role.SUBMITTER)
        try:
            await publish_request(user, pod_request("gone-1", ["edge-daejeon"]), "gone-1")
            await settle(service.store, "gone-1", State.BOUND)
            await publish_cancel(user, "gone-1", "changed my mind")
            await settle(service.store, "gone-1", State.CANCELLED)
        finally:
            await user.close()
        await asyncio.sleep(1.5)  # several rounds of housekeeping, had anyone run them
        snapshots = SnapshotStore(service.store.nc)
        assert await snapshots.list() == []
        assert service.api_url is not None
        assert await status_of(service.api_url, "gone-1") == 200

        stop = asyncio.Event()
        keeper = housekeeper_of(config, service.nats_url, tmp_path)
        task = asyncio.create_task(serve(keeper, {"housekeeper"}, stop))
        try:

            async def expired() -> bool:
                assert not task.done(), task.exception()
                assert service.api_url is not None
                return await status_of(service.api_url, "gone-1") == 410

            await eventually(expired, 30)
            assert await snapshots.list()
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        assert (keeper.data_path / "readmodel.sqlite").exists()  # its own, for retention
    server_log = (config.data_path / "nats" / "nats-server.log").read_text()
    assert "Violation" not in server_log
