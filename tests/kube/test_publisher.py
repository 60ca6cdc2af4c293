"""The inventory publisher against the log: what a restart appends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gsch.eventstore.store import EventStore
from gsch.kube.member import running_member
from gsch.runtime.embedded import EmbeddedNats
from tests.fakekube.server import FakeKube, node, pod
from tests.support.kube import member_config
from tests.support.waits import eventually


async def test_a_restarted_publisher_appends_nothing_when_nothing_changed(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    config = member_config(tmp_path, nats_server.url, kubeconfig)
    settings = config.kube.clusters["ka"]
    fakes["ka"].put(pod("sys-1", "ka-n1", cpu="100m", namespace="kube-system"))

    async def pods_reported() -> bool:
        return await store.last("gsch.telemetry.ka.pods.ka-n1.PodsReported") is not None

    async with running_member("ka", settings, config, store):
        await eventually(pods_reported)
        await asyncio.sleep(0.3)  # several coalescing windows: everything is out
    before = await store.read("gsch.events.cluster.ka.>")
    reports = await store.read("gsch.telemetry.ka.>")

    async with running_member("ka", settings, config, store) as member:
        await eventually(lambda: _judged(member.publisher.judgement()))
        await asyncio.sleep(0.3)
        assert await store.read("gsch.events.cluster.ka.>") == before  # a restart repeats nothing
        assert await store.read("gsch.telemetry.ka.>") == reports
        fakes["ka"].put(node("ka-n2", labels={"zone": "b"}))  # a change is still news

        async def relabelled() -> bool:
            last = await store.last("gsch.events.cluster.ka.node.ka-n2.NodeDeclared")
            return last is not None and last.event.labels.get("zone") == "b"  # type: ignore[union-attr]

        await eventually(relabelled)
    after = await store.read("gsch.events.cluster.ka.>", after=before[-1].seq)
    assert [type(s.event).__name__ for s in after] == ["NodeDeclared"]


async def _judged(ready: bool | None) -> bool:
    return ready is True
