"""Member-cluster tests: the configuration naming the fake API servers, the requests sent to
them, and what a test does to a request from outside (wait for it to settle, cancel it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from gsch.eventstore.store import EventStore
from gsch.model.states import State
from gsch.runtime.config import Config, load_config
from gsch.scheduler.cancel import cancel_request
from tests.support.waits import eventually

CLUSTERS = ("ka", "kb", "kc")


def member_config(
    tmp_path: Path, nats_url: str, kubeconfig: Path, mode: str = "central", **kube: Any
) -> Config:
    clusters = {
        name: {"mode": mode, "kubeconfig": str(kubeconfig), "context": name, "tier": "edge"}
        for name in CLUSTERS
    }
    settings = {"unreachable_after": 1.0, "coalesce_seconds": 0.05, "request_timeout": 2,
                "watch_seconds": 5, "agent_timeout": 3, "clusters": clusters, **kube}  # fmt: skip
    overrides = {
        "data_dir": str(tmp_path / "data"),
        "nats": {"url": nats_url},
        "queue": {"backoff_base": 0.05, "backoff_max": 0.2, "lease_seconds": 5},
        "kube": settings,
    }
    return load_config(None, overrides, environ={})


def deployment_request(request_id: str, levels: list[Any], cpu: str = "500m") -> bytes:
    container = {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}
    body = {
        "request_id": request_id,
        "policy": "GMostRequestedPriority",
        "select_clusters": levels,
        "project_name": "p1",
        "workspace_name": "w1",
        "workload": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
             "data": {"k": "v"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [container]}}}},
        ],
    }  # fmt: skip
    return msgspec.json.encode(body)


async def settled(store: EventStore, request_id: str, timeout: float = 30.0) -> Any:
    async def done() -> bool:
        state = await store.load_request(request_id)
        return state.state in (State.BOUND, State.FAILED, State.CANCELLED, State.REJECTED)

    await eventually(done, timeout)
    return await store.load_request(request_id)


async def cancel(store: EventStore, request_id: str) -> None:
    """Cancel the way every door of gsch does (conditional on the request's history, the
    capacity released in the same append)."""
    outcome = await cancel_request(store, request_id, "cancelled by test")
    assert outcome.cancelled, outcome.message
