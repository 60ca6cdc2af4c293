"""Fixtures for member-cluster tests: fake API servers on loopback and a kubeconfig naming
them, so kubernetes-asyncio reaches them as it would reach real clusters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gsch.kube.client import KubeClient
from tests.fakekube.server import FakeKube, node, write_kubeconfig

CLUSTERS = ("ka", "kb", "kc")


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


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until `check()` holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)
