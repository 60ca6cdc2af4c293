"""Central mode end to end: gsch workers and the binder against three fake API servers (real
HTTP through kubernetes-asyncio) and a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from gsch.client import publish_request
from gsch.clusters.binder import Binding
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import cluster_subject, request_history
from gsch.kube.central import CentralBackend
from gsch.kube.member import running_member
from gsch.model.events import (
    ClusterDeclared,
    RequestRequeued,
)
from gsch.model.resources import Resources
from gsch.model.states import State
from gsch.runtime.config import Config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import Running
from tests.fakekube.server import FakeKube, node, pod
from tests.support.kube import cancel, deployment_request, member_config, settled
from tests.support.pipeline import running, wait_inventory
from tests.support.waits import eventually


async def test_inventory_follows_nodes_and_pods_coalesced(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    config = member_config(tmp_path, nats_server.url, kubeconfig, coalesce_seconds=0.3)
    server = fakes["ka"]
    server.put(node("ka-n1", labels={"zone": "a"}))
    async with running_member("ka", config.kube.clusters["ka"], config, store):

        async def declared(name: str, **wanted: Any) -> bool:
            last = await store.last(f"gsch.events.cluster.ka.node.{name}.NodeDeclared")
            event = last.event if last else None
            return event is not None and all(getattr(event, k) == v for k, v in wanted.items())

        await eventually(lambda: declared("ka-n1", ready=True))
        await eventually(lambda: declared("ka-n2", ready=True))
        cluster = await store.last(cluster_subject("ka", "ClusterDeclared"))
        assert cluster is not None
        assert isinstance(cluster.event, ClusterDeclared)
        assert cluster.event.ready
        assert cluster.event.endpoint == f"127.0.0.1:{server.port}"
        first = await store.last("gsch.events.cluster.ka.node.ka-n1.NodeDeclared")
        assert first is not None
        assert first.event.labels["zone"] == "a"  # type: ignore[union-attr]
        assert first.event.addresses == ("127.0.0.1",)  # type: ignore[union-attr]

        # A burst of pod changes: foreign pods count, gsch's own do not; one event per window.
        before = len(await store.read("gsch.events.cluster.ka.node.ka-n1.NodeDeclared"))
        for index in range(20):
            server.put(pod(f"sys-{index}", "ka-n1", cpu="50m", namespace="kube-system"))
        server.put(pod("mine", "ka-n1", cpu="1", labels={"gsch.io/request-id": "r1"}))
        server.put(node("ka-n2", ready=False))
        await eventually(lambda: declared("ka-n1", foreign=Resources(cpu_m=1000, pods=20)))
        await eventually(lambda: declared("ka-n2", ready=False))
        after = len(await store.read("gsch.events.cluster.ka.node.ka-n1.NodeDeclared"))
        assert after - before <= 3  # coalesced, not one event per pod

        pods = await store.last("gsch.telemetry.ka.pods.ka-n1.PodsReported")
        assert pods is not None
        listed = pods.event.pods  # type: ignore[union-attr]
        assert "default/mine" in listed
        assert "kube-system/sys-19" in listed

        # Nothing changed: nothing more is published.
        count = len(await store.read("gsch.events.cluster.>"))
        await asyncio.sleep(0.8)
        assert len(await store.read("gsch.events.cluster.>")) == count


async def test_placement_is_applied_pinned_and_survives_redelivery(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    config, service = central
    await publish_request(nc, deployment_request("d-1", [["ka", "kb"]]), "d-1")
    state = await settled(service.store, "d-1")
    assert state.state is State.BOUND, state.reasons
    [placement] = state.placements
    server = fakes[placement.cluster]
    deployment = server.get("apps/v1", "Deployment", "p1-w1", "web")
    assert deployment is not None
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"kubernetes.io/hostname": placement.node}
    assert deployment["metadata"]["labels"]["gsch.io/request-id"] == "d-1"
    assert deployment["metadata"]["annotations"]["gsch.io/policy"] == "GMostRequestedPriority"
    assert server.get("v1", "ConfigMap", "p1-w1", "cfg") is not None
    assert server.get("v1", "Namespace", None, "p1-w1") is not None
    other = fakes["kb" if placement.cluster == "ka" else "ka"]
    assert other.get("apps/v1", "Deployment", "p1-w1", "web") is None

    # A redelivered binding applies the same objects again: nothing new, nothing changed.
    creations, version = server.creations, server.rv
    async with running_member(
        placement.cluster, config.kube.clusters[placement.cluster], config, service.store
    ) as member:
        backend = CentralBackend({placement.cluster: member})
        binding = Binding("d-1", state.attempt, placement.cluster, state.placements,
                          state.request)  # fmt: skip
        await backend.bind(binding)
    assert (server.creations, server.rv) == (creations, version)


async def test_refused_apply_rolls_back_and_is_retried(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    _, service = central
    for server in fakes.values():
        server.inject(403, method="PATCH", path_contains="/deployments/", reason="Forbidden",
                      message='deployments "web" is forbidden: exceeded quota')  # fmt: skip
    await publish_request(nc, deployment_request("q-1", [["ka", "kb", "kc"]]), "q-1")
    state = await settled(service.store, "q-1")
    assert state.state is State.BOUND, state.reasons
    events = [s.event for s in await service.store.read(request_history("q-1"))]
    requeued = [e for e in events if isinstance(e, RequestRequeued)]
    assert requeued
    assert "403 Forbidden" in requeued[0].reason
    assert "exceeded quota" in requeued[0].reason
    bound_on = state.placements[0].cluster
    for name, server in fakes.items():
        present = server.get("v1", "ConfigMap", "p1-w1", "cfg") is not None
        # All or none: where the Deployment was refused, the ConfigMap was removed again.
        assert present == (name == bound_on), name
    rollback = ("DELETE", "/api/v1/namespaces/p1-w1/configmaps/cfg")
    assert any(rollback in server.calls for server in fakes.values())


async def test_a_cluster_that_keeps_refusing_is_passed_over_on_the_retry(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    _, service = central
    # ka is the first level and refuses every Deployment (a quota that never lifts).
    fakes["ka"].inject(403, method="PATCH", path_contains="/deployments/", times=None,
                       reason="Forbidden", message="exceeded quota")  # fmt: skip
    await publish_request(nc, deployment_request("avoid-1", ["ka", "kb"]), "avoid-1")
    state = await settled(service.store, "avoid-1")
    assert state.state is State.BOUND, state.reasons
    assert [p.cluster for p in state.placements] == ["kb"]
    events = [s.event for s in await service.store.read(request_history("avoid-1"))]
    requeued = [e for e in events if isinstance(e, RequestRequeued)]
    assert [e.avoid_clusters for e in requeued] == [("ka",)]  # one refusal, then elsewhere


async def test_cancel_removes_what_was_applied(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    _, service = central
    await publish_request(nc, deployment_request("c-1", [["ka"]]), "c-1")
    state = await settled(service.store, "c-1")
    assert state.state is State.BOUND, state.reasons
    server = fakes["ka"]
    assert server.get("apps/v1", "Deployment", "p1-w1", "web") is not None
    await cancel(service.store, "c-1")

    async def removed() -> bool:
        deployment = server.get("apps/v1", "Deployment", "p1-w1", "web")
        return deployment is None and server.get("v1", "ConfigMap", "p1-w1", "cfg") is None

    await eventually(removed)


async def test_vanished_api_server_makes_its_cluster_not_ready(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    config = member_config(tmp_path, nats_server.url, kubeconfig)
    # Other workloads fill half of ka, so kb (the freest) wins while it answers.
    for name in ("ka-n1", "ka-n2"):
        fakes["ka"].put(pod(f"busy-{name}", name, cpu="2", namespace="kube-system"))
    async with running(config, {"worker", "binder"}) as service:
        store = service.store
        await wait_inventory(store, 6)
        await publish_request(nc, deployment_request("v-1", [["ka", "kb"]]), "v-1")
        state = await settled(store, "v-1")
        assert state.placements[0].cluster == "kb"

        await fakes["kb"].stop()

        async def kb_ready(wanted: bool) -> bool:
            last = await store.last(cluster_subject("kb", "ClusterDeclared"))
            return last is not None and last.event.ready is wanted  # type: ignore[union-attr]

        await eventually(lambda: kb_ready(False))
        body = deployment_request("v-2", [["ka", "kb"]]).replace(b'"web"', b'"web2"')
        await publish_request(nc, body, "v-2")
        state = await settled(store, "v-2")
        assert state.state is State.BOUND, state.reasons
        assert state.placements[0].cluster == "ka"

        await fakes["kb"].start()
        await eventually(lambda: kb_ready(True))
