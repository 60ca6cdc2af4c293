"""Shared fixtures: a real nats-server per test on a free loopback port with a temporary store
(gsch's own embedded runner), a three-node cluster for fault tests, a client and the store."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from hypothesis import settings
from nats.aio.client import Client

from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.runtime.embedded import EmbeddedCluster, EmbeddedNats

# Property tests draw the same examples on every run by default, so a run (CI's above all)
# passes or fails for the code, not for the draw; GSCH_HYPOTHESIS=explore draws new ones.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("GSCH_HYPOTHESIS", "repeatable"))


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """Stopped and started again by a test, it keeps its port and store."""
    server = EmbeddedNats(tmp_path / "nats-server", name="gsch-test")
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[EmbeddedCluster]:
    """Three nodes with JetStream; each can be stopped and started again on its own."""
    cluster = EmbeddedCluster(tmp_path / "nats-cluster", size=3)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)


@pytest.fixture
async def store(nc: Client) -> EventStore:
    await apply_declarations(nc, load_declarations())
    return EventStore(nc, request_timeout=2.0, give_up_after=30.0)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_gsch_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GSCH_"):
            monkeypatch.delenv(name)
