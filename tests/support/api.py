"""The API over a real projection of a real log, through a real socket: the client a test
holds and the app it serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gsch.api.app import make_app
from gsch.eventstore.store import EventStore
from gsch.projections.projector import Projector
from tests.support.scenario import Log, running, serving

WRITE_TOKEN = "write-secret"
SEQ = "X-Gsch-Sequence"


@dataclass
class Api:
    client: TestClient[Any, Any]
    log: Log
    projector: Projector
    last: int

    async def get(self, path: str, status: int = 200) -> Any:
        response = await self.client.get(path)
        body = await response.json()
        assert response.status == status, body
        assert response.content_type == "application/json"
        assert int(response.headers[SEQ]) == body["sequence"]
        return body


@contextlib.asynccontextmanager
async def app_over(
    store: EventStore, db_path: Path, until: int = 0, **options: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    """`make_app(store=store, **options)` over a running projector that has reached `until`."""
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(until, 10)
        async with serving(make_app(projector, store=store, **options)) as client:
            yield client
