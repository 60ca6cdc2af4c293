"""The default installation is secured: the embedded server gsch starts loads the bus's users,
each role connects with its own credentials and has every permission its work needs (the
server logs no violation over a whole request lifecycle), and a restarted installation finds
its log rather than creating one."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp
import nats
import nats.errors
import pytest

from gsch.bus.roles import Role
from gsch.client import publish_cancel, publish_request
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import StreamMissingError
from gsch.model.states import State
from gsch.runtime.bus import open_bus
from gsch.runtime.connection import connect
from gsch.runtime.service import serve
from tests.support.bus import embedded_config
from tests.support.pipeline import pod_request, running
from tests.support.waits import eventually


async def reaches(store: EventStore, request_id: str, state: State) -> None:
    async def reached() -> bool:
        return (await store.load_request(request_id)).state is state

    await eventually(reached, 30)


async def test_every_role_works_with_only_its_own_permissions(tmp_path: Path) -> None:
    """A whole lifecycle with housekeeping running: snapshots, compaction, retention."""
    config = embedded_config(tmp_path)
    config.snapshots.interval = 0.2
    config.retention.finished_requests = 0.1
    config.retention.interval = 0.2
    async with running(config, {"worker", "api", "binder", "housekeeper"}) as service:
        bus_dir = config.data_path / "bus"
        assert stat.S_IMODE(bus_dir.stat().st_mode) == 0o700
        for role in ("admin", "worker", "api", "binder", "housekeeper", "submitter"):
            assert stat.S_IMODE((bus_dir / f"{role}.nk").stat().st_mode) == 0o600
        with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
            await nats.connect(service.nats_url, allow_reconnect=False, connect_timeout=2)
        user = await connect(config, service.nats_url, "a user", role=Role.SUBMITTER)
        try:
            await publish_request(user, pod_request("kept-1", ["edge-daejeon"]), "kept-1")
            await publish_request(user, pod_request("gone-1", ["edge-daejeon"]), "gone-1")
            await reaches(service.store, "kept-1", State.BOUND)
            await reaches(service.store, "gone-1", State.BOUND)
            await publish_cancel(user, "gone-1", "changed my mind")
            await reaches(service.store, "gone-1", State.CANCELLED)
            # The housekeeper kept house: the cancelled request expired (410), the bound one
            # stays; snapshots were written and read back by the other roles at their start.
            async with aiohttp.ClientSession() as http:

                async def gone() -> bool:
                    url = f"{service.api_url}/v1/requests/gone-1"
                    async with http.get(url) as answer:
                        return answer.status == 410

                await eventually(gone, 30)
                async with http.get(f"{service.api_url}/v1/requests/kept-1") as answer:
                    assert answer.status == 200
            assert await SnapshotStore(service.store.nc).list()
        finally:
            await user.close()
    server_log = (config.data_path / "nats" / "nats-server.log").read_text()
    assert "Violation" not in server_log


async def test_a_restart_finds_its_log_and_never_creates_a_missing_one(tmp_path: Path) -> None:
    config = embedded_config(tmp_path)
    async with running(config, {"worker", "api", "binder"}) as service:
        user = await connect(config, service.nats_url, "a user", role=Role.SUBMITTER)
        await publish_request(user, pod_request("first-1", ["edge-daejeon"]), "first-1")
        await user.close()
        await reaches(service.store, "first-1", State.BOUND)
    async with running(config, {"api"}) as service:  # a restart: same data dir
        assert (await service.store.load_request("first-1")).state is State.BOUND
        admin = await connect(config, service.nats_url, "admin", role=Role.ADMIN)
        await admin.jetstream().delete_stream("GSCH_EVENTS")
        await admin.close()
        await asyncio.sleep(0.5)
    with pytest.raises(StreamMissingError, match="gsch streams apply"):
        await asyncio.wait_for(serve(config, {"api"}, asyncio.Event()), 60)
    async with open_bus(config, "check") as bus:
        admin = await bus.connection(Role.ADMIN)
        with pytest.raises(nats.js.errors.NotFoundError):
            await admin.jetstream().stream_info("GSCH_EVENTS")
