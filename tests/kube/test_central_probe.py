"""The binder's own latency probe for central clusters, against fake API servers on loopback."""

from __future__ import annotations

from pathlib import Path

from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import latency_subject
from gsch.model.events import LatencyReported
from gsch.runtime.embedded import EmbeddedNats
from tests.fakekube.server import FakeKube
from tests.support.kube import member_config
from tests.support.pipeline import running
from tests.support.waits import eventually

SOURCE = latency_subject("hub", "gsch-1", "LatencyReported")


async def test_the_binder_probes_its_central_clusters_from_its_own_host(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    port = fakes["ka"].port  # the fake nodes' address is loopback: any listening port
    probe = {"central": True, "central_cluster": "hub", "central_node": "gsch-1",
             "interval": 0.2, "samples": 2, "timeout": 0.5, "node_port": port}  # fmt: skip
    config = member_config(tmp_path, nats_server.url, kubeconfig, probe=probe)
    config.kube.clusters["kc"].probe = False  # a member can opt out

    async def report() -> LatencyReported | None:
        last = await store.last(SOURCE)
        return last.event if last and isinstance(last.event, LatencyReported) else None

    async def measured() -> bool:
        found = await report()
        return found is not None and {"ka/ka-n1", "kb/kb-n2"} <= set(found.to_nodes)

    async with running(config, {"binder"}):
        await eventually(measured)
    found = await report()
    assert found is not None
    assert (found.cluster, found.node) == ("hub", "gsch-1")
    assert set(found.to_clusters) == {"ka", "kb"}  # kc opted out
    assert set(found.to_clusters_p95) == {"ka", "kb"}
    assert all(rtt > 0 for rtt in found.to_clusters.values())
    assert found.to_nodes["gsch-1"] == 0.0
    assert not any(name.startswith("kc/") for name in found.to_nodes)


async def test_no_central_probe_unless_configured(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    probe = {"central_cluster": "hub", "central_node": "gsch-1", "interval": 0.1}
    config = member_config(tmp_path, nats_server.url, kubeconfig, probe=probe)
    config.kube.clusters["kb"].probe = True  # only kb asks for it
    async with running(config, {"binder"}):
        await eventually(lambda: _reported(store))
    last = await store.last(SOURCE)
    assert last is not None
    assert isinstance(last.event, LatencyReported)
    assert set(last.event.to_clusters) == {"kb"}


async def _reported(store: EventStore) -> bool:
    return await store.last(SOURCE) is not None
