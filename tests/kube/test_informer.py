"""List + watch against the fake API server through kubernetes-asyncio: paging, following
changes, 410 Gone → re-list, errors → backoff, and reachability without flapping."""

from __future__ import annotations

import asyncio

import pytest

from gsch.kube.client import KubeApiError, KubeClient
from gsch.kube.informer import Informer, Reachability
from gsch.kube.inventory import ClusterInventory
from tests.fakekube.server import FakeKube, node
from tests.support.waits import eventually


class NodeSink:
    def __init__(self, inventory: ClusterInventory) -> None:
        self.reset = inventory.reset_nodes
        self.event = inventory.node_event


async def test_list_is_paged_and_the_watch_follows_changes(
    fakes: dict[str, FakeKube], kube_client: KubeClient
) -> None:
    server = fakes["ka"]
    for index in range(3, 8):
        server.put(node(f"ka-n{index}"))
    inventory = ClusterInventory()
    informer = Informer(kube_client, "/api/v1/nodes", NodeSink(inventory),
                        Reachability(5.0), page_size=2, watch_seconds=5)  # fmt: skip
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert sorted(inventory.nodes) == [f"ka-n{i}" for i in range(1, 8)]
        pages = [c for c in server.calls if c == ("GET", "/api/v1/nodes")]
        assert len(pages) >= 4  # 7 nodes, 2 per page, plus the watch

        server.put(node("ka-n1", cpu="16"))
        server.remove("v1", "Node", None, "ka-n2")

        async def followed() -> bool:
            n1 = inventory.nodes.get("ka-n1")
            return (
                n1 is not None and n1.allocatable.cpu_m == 16000 and "ka-n2" not in inventory.nodes
            )

        await eventually(followed)
        assert informer.lists == 1  # followed by watching, not by listing again
    finally:
        task.cancel()


async def test_gone_means_list_again(fakes: dict[str, FakeKube], kube_client: KubeClient) -> None:
    server = fakes["ka"]
    inventory = ClusterInventory()
    informer = Informer(kube_client, "/api/v1/nodes", NodeSink(inventory), Reachability(5.0),
                        watch_seconds=1)  # fmt: skip
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        await server.stop()  # the watch breaks; history moves on while we are away
        server.put(node("ka-n9"))
        server.compact()
        await server.start()

        async def relisted() -> bool:
            return informer.lists >= 2 and "ka-n9" in inventory.nodes

        await eventually(relisted)
    finally:
        task.cancel()


async def test_errors_back_off_and_recover(
    fakes: dict[str, FakeKube], kube_client: KubeClient
) -> None:
    server = fakes["ka"]
    server.inject(500, method="GET", path_contains="/api/v1/nodes", times=2)
    server.inject(429, method="GET", path_contains="/api/v1/nodes", times=1)
    inventory = ClusterInventory()
    reachability = Reachability(30.0)
    informer = Informer(kube_client, "/api/v1/nodes", NodeSink(inventory), reachability,
                        backoff=(0.05, 0.2))  # fmt: skip
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert sorted(inventory.nodes) == ["ka-n1", "ka-n2"]
        assert reachability.reachable
        assert not server.faults
    finally:
        task.cancel()


def test_reachability_needs_a_sustained_outage() -> None:
    now = [100.0]
    reachability = Reachability(10.0, clock=lambda: now[0])
    reachability.failed()
    assert reachability.reachable  # one failed call is not an outage
    now[0] += 5
    reachability.failed()
    assert reachability.reachable
    now[0] += 6
    assert not reachability.reachable
    reachability.ok()
    assert reachability.reachable


async def test_client_reports_the_api_reason(kube_client: KubeClient) -> None:
    with pytest.raises(KubeApiError) as caught:
        await kube_client.call("GET", "/api/v1/namespaces/default/pods/missing")
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
