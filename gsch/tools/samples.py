"""Sample requests of every form and policy, for the demo and the benchmark."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import msgspec

from gsch.clusters.topology import Topology
from gsch.model.ids import REQUEST_ID_KEY, numbered_request_id


def _deployment(
    name: str, cpu: str, memory: str, replicas: int = 1, gpu: int = 0
) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": memory}}
    if gpu:
        resources["limits"] = {"nvidia.com/gpu": gpu}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "nginx:1.27", "resources": resources}]
                },
            },
        },
    }


def _pod(
    name: str, cpu: str, memory: str, extra_env: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "busybox:1.36",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    if extra_env:
        container["env"] = extra_env
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


# What a sample is made to show, when it is not meant to be placed.
INVALID = "invalid"  # rejected at intake, with the reason naming the field
UNPLACEABLE = "unplaceable"  # pinned to a node whose taint it does not tolerate: fails after Z*


@dataclass(frozen=True)
class Sample:
    request_id: str  # declared in the body, or (a body that is not JSON) only as Nats-Msg-Id
    body: dict[str, Any] | bytes
    purpose: str | None = None  # INVALID, UNPLACEABLE, or None: meant to be placed


class SampleRequests:
    """Generates a varied stream of requests against a topology's cluster names: mostly
    requests that can be placed, and on purpose a few invalid ones (`invalid_share`) and a
    few pinned to a node that will never take them (`unplaceable_share` of pinned ones)."""

    def __init__(
        self,
        topology: Topology,
        seed: int = 7,
        invalid_share: float = 0.05,
        unplaceable_share: float = 0.1,
    ) -> None:
        self._random = random.Random(seed)
        self._by_tier: dict[str, list[str]] = {}
        for cluster in topology.clusters:
            self._by_tier.setdefault(cluster.tier, []).append(cluster.name)
        self._nodes = {c.name: [n.name for n in c.nodes] for c in topology.clusters}
        self._untainted = {c.name: [n.name for n in c.nodes if not n.taints]
                           for c in topology.clusters}  # fmt: skip
        self._tainted = [(c.name, n.name) for c in topology.clusters for n in c.nodes if n.taints]
        self._all = [c.name for c in topology.clusters]
        # Pods the topology runs (cluster, "namespace/name"): sources for frompod requests.
        self._pods = [(c.name, pod) for c in topology.clusters for n in c.nodes for pod in n.pods]
        self.invalid_share = invalid_share
        self.unplaceable_share = unplaceable_share

    def _pick(self, tier: str, count: int) -> list[str]:
        names = self._by_tier.get(tier) or self._all
        return self._random.sample(names, min(count, len(names)))

    def _levels(self) -> list[Any]:
        near = self._pick("near-edge", 2)
        edge = self._pick("edge", 2)
        cloud = self._pick("cloud", 1)
        return [near, edge, *cloud]

    def make(self, index: int) -> Sample:
        """Sample number `index`: a dict for valid forms, raw bytes for some invalid ones."""
        rid = numbered_request_id("demo", index, digits=7)
        roll = self._random.random()
        if roll < self.invalid_share:
            return Sample(rid, self._invalid(rid), INVALID)
        if index % 5 == 2:
            return self._pinned(rid, index)
        return Sample(rid, self._body(rid, index))

    def _pinned(self, rid: str, index: int) -> Sample:
        """GEdge v4 option form, pinned to a node: one that can take it, or on purpose one
        whose taint it does not tolerate."""
        unplaceable = bool(self._tainted) and self._random.random() < self.unplaceable_share
        if unplaceable:
            cluster, node = self._random.choice(self._tainted)
        else:
            cluster = self._random.choice([c for c in self._all if self._untainted[c]])
            node = self._random.choice(self._untainted[cluster])
        cpu, memory = self._resources()
        body = {
            "request_id": rid,
            "scope": "global",
            "priority": "GSelectedCluster",
            "option": {
                "user_name": "u1",
                "workspace_name": "w1",
                "project_name": "p1",
                "mode": "node",
                "parameters": {"select_cluster": cluster, "select_node": node},
            },
            "workload": _pod(f"pinned-{index}", cpu, memory),
        }
        return Sample(rid, body, UNPLACEABLE if unplaceable else None)

    def _resources(self) -> tuple[str, str]:
        cpu = self._random.choice(["100m", "250m", "500m", "1"])
        memory = self._random.choice(["128Mi", "256Mi", "512Mi", "1Gi"])
        return cpu, memory

    def _body(self, rid: str, index: int) -> dict[str, Any]:
        cpu, memory = self._resources()
        kind = index % 5
        if kind == 0:  # native, free capacity, packing or spreading over tiered levels
            policy = ("GMostRequestedPriority", "GBinPackPriority", "GBalancedPriority")[index % 3]
            return {
                "request_id": rid,
                "policy": policy,
                "select_clusters": self._levels(),
                "fast": self._random.random() < 0.2,
                "workload": _deployment(
                    f"web-{index}", cpu, memory, replicas=self._random.randint(1, 3)
                ),
            }
        if kind == 1:  # native, ordered cluster list
            return {
                "request_id": rid,
                "policy": "GSelectedCluster",
                "mode": "cluster",
                "select_clusters": self._pick("edge", 2) + self._pick("cloud", 1),
                "project_name": "p1",
                "workspace_name": "w1",
                "user_name": "u1",
                "workload": _pod(f"job-{index}", cpu, memory),
            }
        if kind == 3:  # GEdge v4 form, GEdge's spelling; near edge, then edge, then cloud
            tiers = [["tier=near-edge"], "tier=edge", "tier=cloud"]
            return {
                "request_id": rid,
                "priority": "GMostRequestPriority",
                "option": {"mode": "cpu", "parameters": {"select_clusters": tiers}},
                "workload": _deployment(f"api-{index}", cpu, memory),
            }
        # GEdge v2 embedded form: the config rides in the first container's env.
        levels = self._levels()
        bracket = (
            "["
            + ",".join(
                (f"[{','.join(level)}]" if isinstance(level, list) else level) for level in levels
            )
            + "]"
        )
        config: dict[str, Any] = {"type": "global", "targetClusters": bracket}
        if index % 4 == 3 and self._pods:
            # Low latency from a camera pod: resolved to its node through reported pods.
            cluster, source_pod = self._pods[index % len(self._pods)]
            config["priority"] = "GLowLatencyPriority"
            config["mode"] = "frompod"
            config["option"] = {"sourceCluster": cluster, "sourcePod": source_pod}
        elif index % 2:
            # Low latency from a camera on a near-edge node: the nearest level-1 cluster wins.
            source = levels[0][0] if isinstance(levels[0], list) else levels[0]
            config["priority"] = "GLowLatencyPriority"
            config["option"] = {"sourceCluster": source, "sourceNode": self._nodes[source][0]}
        else:
            config["priority"] = "GMostRequestedPriority"
        pod = _pod(
            f"v2-{index}", cpu, memory, [{"name": "gschConfig", "value": json.dumps(config)}]
        )
        pod["metadata"]["annotations"] = {REQUEST_ID_KEY: rid}
        return pod

    def _invalid(self, rid: str) -> dict[str, Any] | bytes:
        choice = self._random.randrange(4)
        if choice == 0:
            return b"{this is not json"
        workload = _pod("p", "1", "1Gi")
        if choice == 1:  # a policy GEdge never had
            return {"request_id": rid, "policy": "GFastestPriority", "select_clusters": ["x"],
                    "workload": workload}  # fmt: skip
        if choice == 2:  # low latency without its source
            levels = self._all[:2]
            return {"request_id": rid, "policy": "GLowLatencyPriority", "select_clusters": levels,
                    "workload": workload}  # fmt: skip
        return {
            "request_id": rid,
            "policy": "GSelectedCluster",
            "select_clusters": self._all[:1],
            "workload": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                         "metadata": {"name": "take-over"}},
        }  # fmt: skip


def encode(request: dict[str, Any] | bytes) -> bytes:
    return request if isinstance(request, bytes) else msgspec.json.encode(request)


def declared_request_id(request: dict[str, Any] | bytes) -> str | None:
    """The id a request body declares (native and v4 forms: `request_id`; the v2 form: its
    annotation), or None when it declares none and gsch will mint one."""
    if isinstance(request, bytes):
        return None
    if "request_id" in request:
        return str(request["request_id"])
    annotations = (request.get("metadata") or {}).get("annotations") or {}
    found = annotations.get(REQUEST_ID_KEY)
    return str(found) if found else None
