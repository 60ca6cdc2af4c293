"""The API over a real projection of a real log, through a real socket; and a whole live gsch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsch.api.app import make_app
from gsch.api.auth import Tokens
from gsch.eventstore.store import EventStore
from gsch.projections.projector import Projector
from gsch.runtime.embedded import EmbeddedNats
from tests.support.api import WRITE_TOKEN, Api
from tests.support.live import Live, live_gsch
from tests.support.scenario import Log, running, serving, write_scenario


@pytest.fixture
async def api(store: EventStore, tmp_path: Path) -> AsyncIterator[Api]:
    log = Log(store)
    last = await write_scenario(log)
    async with running(Projector(store, tmp_path / "model.sqlite")) as projector:
        assert await projector.wait_for(last, 10)
        app = make_app(projector, store=store, max_wait=2.0, tokens=Tokens(write=WRITE_TOKEN))
        async with serving(app) as client:
            yield Api(client, log, projector, last)


@pytest.fixture
async def live(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Live]:
    async with live_gsch(nats_server, tmp_path) as gsch:
        yield gsch
