"""The whole gsch in the test's own process, and the requests fed to it: a service running
chosen roles on a real nats-server, request bodies, and waits on what it has learnt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from nats.aio.client import Client

from gsch.client import publish_request
from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.runtime.config import Config, load_config
from gsch.runtime.service import Running, default_topology_path, serve

PLAN_TOKEN = "plan-secret"
# One cluster with one 2-CPU node (two 1.5-CPU pods cannot both run) and a tainted one.
SMALL_FLEET = """
[[clusters]]
name = "solo"
tier = "edge"
  [[clusters.nodes]]
  name = "solo-w"
  cpu = "2"
  memory = "8Gi"
  [[clusters.nodes]]
  name = "solo-gpu"
  cpu = "8"
  memory = "8Gi"
  taints = [{ key = "dedicated", value = "x", effect = "NoSchedule" }]
"""


def make_config(tmp_path: Path, url: str | None, **simulator: object) -> Config:
    """The demo topology on the simulator, fast retries, the API on a free port, plans with
    `PLAN_TOKEN`; `url` None: the embedded nats-server in the data dir, as `gsch serve`
    starts it."""
    plan_token = tmp_path / "plan-token"
    plan_token.write_text(PLAN_TOKEN + "\n")
    return load_config(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "nats": {"url": url},
            "api": {"listen": "127.0.0.1:0", "auth": {"plan_token_file": str(plan_token)}},
            "queue": {"backoff_base": 0.05, "backoff_max": 0.2, "lease_seconds": 5},
            "simulator": {
                "topology": str(default_topology_path()),
                "bind_delay": 0.001,
                **simulator,
            },
        },
        environ={},
    )


async def declare_streams(url: str, lease_seconds: float = 30.0) -> None:
    """The operator's first-time step (`gsch streams apply`) on a server without
    authentication: gsch processes never create the log themselves."""
    nc = await nats.connect(url)
    try:
        await apply_declarations(nc, load_declarations(lease_seconds=lease_seconds))
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def running(config: Config, roles: set[str]) -> AsyncIterator[Running]:
    """`serve(config, roles)` in a task until the block ends; a failed start raises here.
    On a configured server the streams are declared first, as an operator would."""
    if config.nats.url is not None:
        await declare_streams(config.nats.url, config.queue.lease_seconds)
    stop = asyncio.Event()
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, roles, stop, started=started))
    first: list[asyncio.Future[Any]] = [task, started]
    done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        yield started.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def get_json(url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        result: dict[str, object] = await response.json()
        return result


async def post_json(
    url: str, body: bytes, token: str | None = PLAN_TOKEN
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def pod_request(request_id: str, levels: list[Any], cpu: str = "100m", **fields: Any) -> bytes:
    """A one-pod request; `fields` add or replace top-level request fields."""
    return msgspec.json.encode(
        {
            "request_id": request_id,
            "policy": "GMostRequestedPriority",
            "select_clusters": levels,
            "workload": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": request_id},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                        }
                    ]
                },
            },
            **fields,
        }
    )


def generated_levels(index: int, clusters: int = 20) -> list[Any]:
    """Levels over the clusters of `generated_topology(clusters, ...)`, varying per request."""
    names = [f"{tier}-{i:05d}" for i, tier in enumerate(_tiers(clusters))]
    first = names[index % clusters]
    second = names[(index * 7 + 3) % clusters]
    third = names[(index * 13 + 5) % clusters]
    return [[first, second], third] if third not in (first, second) else [[first, second]]


def _tiers(clusters: int) -> list[str]:
    out = []
    for index in range(clusters):
        share = index / clusters
        out.append("cloud" if share < 0.1 else "edge" if share < 0.4 else "near-edge")
    return out


async def publish_all(nc: Client, bodies: list[tuple[str, bytes]]) -> None:
    for request_id, body in bodies:
        await publish_request(nc, body, request_id)


async def wait_inventory(store: EventStore, nodes: int, timeout: float = 60.0) -> None:
    """Wait until the binder has declared `nodes` nodes (requests naming undeclared clusters
    are retried and then fail, as they should, so tests start once the fleet is known)."""
    feed = SnapshotFeed(store)
    snapshot = await feed.start()
    try:
        async with asyncio.timeout(timeout):
            while sum(len(c.nodes) for c in snapshot.clusters.values()) < nodes:
                await asyncio.sleep(0.05)
    finally:
        await feed.stop()
