"""GSetClusters through Kubernetes: one copy on every cluster of the set, or none at all."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from gsch.client import publish_request
from gsch.eventstore.subjects import request_history
from gsch.model.events import RequestRequeued
from gsch.model.states import State
from gsch.runtime.config import Config
from gsch.runtime.service import Running
from tests.fakekube.server import FakeKube
from tests.support.kube import deployment_request, settled

DEPLOYMENTS = "/apis/apps/v1/namespaces/p1-w1/deployments/web"


def set_request(request_id: str, clusters: list[str]) -> bytes:
    body = msgspec.json.decode(deployment_request(request_id, [clusters]))
    body["policy"] = "GSetClusters"
    return msgspec.json.encode(body)


def pinned_node(server: FakeKube) -> str | None:
    deployment = server.get("apps/v1", "Deployment", "p1-w1", "web")
    if deployment is None:
        return None
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    return str(selector["kubernetes.io/hostname"])


async def test_a_set_is_applied_on_every_cluster_each_pinned(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    _, service = central
    await publish_request(nc, set_request("set-1", ["ka", "kb"]), "set-1")
    state = await settled(service.store, "set-1")
    assert state.state is State.BOUND, state.reasons
    placed = {p.cluster: p.node for p in state.placements}
    assert set(placed) == {"ka", "kb"}
    for name in ("ka", "kb"):
        assert pinned_node(fakes[name]) == placed[name]
        assert placed[name].startswith(f"{name}-")
        assert fakes[name].get("v1", "ConfigMap", "p1-w1", "cfg") is not None
    assert pinned_node(fakes["kc"]) is None


async def test_one_refusal_rolls_the_whole_set_back_and_it_is_retried(
    central: tuple[Config, Running], nc: Client, fakes: dict[str, FakeKube]
) -> None:
    _, service = central
    # kb refuses its first Deployment (a quota); ka accepts everything.
    fakes["kb"].inject(403, method="PATCH", path_contains="/deployments/", reason="Forbidden",
                       message="exceeded quota")  # fmt: skip
    await publish_request(nc, set_request("set-2", ["ka", "kb"]), "set-2")
    state = await settled(service.store, "set-2")
    assert state.state is State.BOUND, state.reasons
    events = [s.event for s in await service.store.read(request_history("set-2"))]
    requeued = [e for e in events if isinstance(e, RequestRequeued)]
    assert len(requeued) == 1
    assert "403 Forbidden" in requeued[0].reason
    # The retry placed the whole set again: a copy on each, nothing partial.
    assert sorted(p.cluster for p in state.placements) == ["ka", "kb"]
    for name in ("ka", "kb"):
        assert pinned_node(fakes[name]) is not None
    # ka's copy of the refused attempt was removed before the retry (all or none), unless
    # ka was applied after kb's refusal, in which case it was never applied.
    ka_calls = fakes["ka"].calls
    patches = [i for i, call in enumerate(ka_calls) if call == ("PATCH", DEPLOYMENTS)]
    deletes = [i for i, call in enumerate(ka_calls) if call == ("DELETE", DEPLOYMENTS)]
    assert len(patches) == len(deletes) + 1, ka_calls
    if deletes:
        assert patches[0] < deletes[0] < patches[-1]
