"""Fixtures for member-cluster tests: fake API servers on loopback and a kubeconfig naming
them, so kubernetes-asyncio reaches them as it would reach real clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsch.kube.client import KubeClient
from gsch.runtime.config import Config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import Running
from tests.fakekube.server import FakeKube, node, write_kubeconfig
from tests.support.kube import CLUSTERS, member_config
from tests.support.pipeline import running, wait_inventory


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeKube]]:
    """Three member clusters with two ready nodes each (`<cluster>-n1`, `<cluster>-n2`)."""
    servers = {name: FakeKube(name) for name in CLUSTERS}
    for name, server in servers.items():
        server.put(node(f"{name}-n1"))
        server.put(node(f"{name}-n2"))
        await server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            await server.stop()


@pytest.fixture
def kubeconfig(tmp_path: Path, fakes: dict[str, FakeKube]) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", fakes)


@pytest.fixture
async def kube_client(kubeconfig: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(str(kubeconfig), "ka", timeout=2.0)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def central(
    tmp_path: Path, nats_server: EmbeddedNats, fakes: dict[str, FakeKube], kubeconfig: Path
) -> AsyncIterator[tuple[Config, Running]]:
    """Workers and a binder serving the three fake clusters centrally, inventory known."""
    config = member_config(tmp_path, nats_server.url, kubeconfig)
    async with running(config, {"worker", "binder"}) as service:
        await wait_inventory(service.store, 6)
        yield config, service
