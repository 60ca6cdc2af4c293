"""Agent mode: `serve_agent` against a fake API server, reached by the central binder through
NATS only (the central side has no kubeconfig for the cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from nats.aio.client import Client

from gsch.client import publish_request
from gsch.clusters.facts import declare
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ClusterKey, cluster_subject, latency_subject, request_history
from gsch.kube.agent import serve_agent
from gsch.kube.envelope import HCODE_BIND, HCODE_ERROR, Envelope, Party, agent_subject, decode
from gsch.model.events import ClusterDeclared, LatencyReported, RequestRequeued
from gsch.model.states import State
from gsch.runtime.config import Config
from gsch.runtime.embedded import EmbeddedNats
from tests.fakekube.server import FakeKube
from tests.support.kube import cancel, deployment_request, member_config, settled
from tests.support.pipeline import running, wait_inventory
from tests.support.waits import eventually


def agent_config(tmp_path: Path, nats_url: str, kubeconfig: Path, node_port: int) -> Config:
    probe = {"interval": 0.2, "samples": 2, "timeout": 0.5, "node_port": node_port}
    return member_config(tmp_path, nats_url, kubeconfig, mode="agent", probe=probe)


@contextlib.asynccontextmanager
async def agent(config: Config, nc: Client, cluster: str, node: str) -> AsyncIterator[None]:
    stop = asyncio.Event()
    store = EventStore(nc, request_timeout=2.0)
    task = asyncio.create_task(serve_agent(config, nc, store, cluster, node, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_agent_publishes_inventory_and_latency_and_binds_over_nats(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, store: EventStore,
    fakes: dict[str, FakeKube], kubeconfig: Path,
) -> None:  # fmt: skip
    config = agent_config(tmp_path, nats_server.url, kubeconfig, fakes["ka"].port)
    # Another cluster, declared by whoever serves it: a probe target through its endpoint.
    kb = ClusterDeclared(at=time.time(), cluster="kb", tier="edge",
                         endpoint=f"127.0.0.1:{fakes['kb'].port}")  # fmt: skip
    await declare(store, ClusterKey("kb"), kb)
    async with running(config, {"worker", "binder"}) as service, agent(config, nc, "ka", "ka-n1"):
        await wait_inventory(service.store, 2)

        async def measured() -> bool:
            last = await store.last(latency_subject("ka", "ka-n1", "LatencyReported"))
            event = last.event if last else None
            return (
                isinstance(event, LatencyReported)
                and "kb" in event.to_clusters
                and "kb" in event.to_clusters_p95
                and {"ka-n1", "ka-n2"} <= set(event.to_nodes)
            )

        await eventually(measured)
        last = await store.last(latency_subject("ka", "ka-n1", "LatencyReported"))
        assert last is not None
        report = last.event
        assert isinstance(report, LatencyReported)
        assert report.to_clusters["kb"] > 0
        assert report.to_clusters_p95["kb"] >= 0
        assert report.to_nodes["ka-n1"] == 0.0

        await publish_request(nc, deployment_request("a-1", [["ka"]]), "a-1")
        state = await settled(service.store, "a-1")
        assert state.state is State.BOUND, state.reasons
        deployment = fakes["ka"].get("apps/v1", "Deployment", "p1-w1", "web")
        assert deployment is not None
        pin = deployment["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        assert pin == state.placements[0].node

        await cancel(service.store, "a-1")

        async def removed() -> bool:
            return fakes["ka"].get("apps/v1", "Deployment", "p1-w1", "web") is None

        await eventually(removed)


async def test_agent_answers_bad_envelopes_with_an_error_code(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    config = agent_config(tmp_path, nats_server.url, kubeconfig, fakes["ka"].port)
    await _streams(nc)
    async with agent(config, nc, "ka", "ka-n1"):
        subject = agent_subject("ka", HCODE_BIND)

        async def ask(data: bytes) -> Envelope:
            async with asyncio.timeout(10):
                while True:  # until the agent has subscribed
                    with contextlib.suppress(Exception):
                        return decode((await nc.request(subject, data, timeout=2)).data)
                    await asyncio.sleep(0.1)

        garbage = await ask(b"not json")
        assert garbage.hcode == HCODE_ERROR
        assert garbage.msg["status"] == "error"
        wrong = Envelope(source=Party("cluster", "gsch-binder"), target=Party("cluster", "kb"),
                         hcode=HCODE_BIND, lcode=1, msg={})  # fmt: skip
        answer = await ask(msgspec.json.encode(wrong))
        assert (answer.hcode, answer.lcode) == (HCODE_ERROR, 2)
        assert "addressed to kb" in answer.msg["error_msg"]
        assert answer.target == Party("cluster", "gsch-binder")


async def _streams(nc: Client) -> None:
    from gsch.eventstore.streams import apply_declarations, load_declarations

    await apply_declarations(nc, load_declarations())


async def test_binding_for_an_absent_agent_fails_and_is_retried(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, store: EventStore,
    fakes: dict[str, FakeKube], kubeconfig: Path,
) -> None:  # fmt: skip
    config = agent_config(tmp_path, nats_server.url, kubeconfig, fakes["ka"].port)
    async with running(config, {"worker", "binder"}) as service:
        async with agent(config, nc, "ka", "ka-n1"):
            await wait_inventory(service.store, 2)
        # The agent is gone; its cluster's inventory stays in the log.
        await publish_request(nc, deployment_request("g-1", [["ka"]]), "g-1")

        async def requeued() -> bool:
            events = [s.event for s in await store.read(request_history("g-1"))]
            return any(isinstance(e, RequestRequeued) for e in events)

        await eventually(requeued)
        events = [s.event for s in await store.read(request_history("g-1"))]
        reason = next(e.reason for e in events if isinstance(e, RequestRequeued))
        assert "agent of ka" in reason
        assert fakes["ka"].get("apps/v1", "Deployment", "p1-w1", "web") is None


async def test_a_silent_agent_sends_placements_elsewhere_until_it_is_back(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, store: EventStore,
    fakes: dict[str, FakeKube], kubeconfig: Path,
) -> None:  # fmt: skip
    config = agent_config(tmp_path, nats_server.url, kubeconfig, fakes["ka"].port)
    config.kube.agent_heartbeat_seconds, config.kube.agent_silence_seconds = 0.2, 1.0
    for name in ("kb", "kc"):  # served centrally: somewhere else to go
        config.kube.clusters[name].mode = "central"

    async def ka_ready(wanted: bool) -> bool:
        last = await store.last(cluster_subject("ka", "ClusterDeclared"))
        return last is not None and last.event.ready is wanted  # type: ignore[union-attr]

    async with running(config, {"worker", "binder"}) as service:
        async with agent(config, nc, "ka", "ka-n1"):
            await wait_inventory(service.store, 6)
            await eventually(lambda: ka_ready(True))
        await eventually(lambda: ka_ready(False))  # stopped: silent, not ready

        await publish_request(nc, deployment_request("s-1", ["ka", "kb"]), "s-1")
        state = await settled(service.store, "s-1")
        assert state.state is State.BOUND, state.reasons
        assert [p.cluster for p in state.placements] == ["kb"]
        events = [s.event for s in await store.read(request_history("s-1"))]
        assert not any(isinstance(e, RequestRequeued) for e in events)  # ka was never tried

        async with agent(config, nc, "ka", "ka-n1"):
            await eventually(lambda: ka_ready(True))
