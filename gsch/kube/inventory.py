"""What one member cluster holds, folded from its Node and Pod objects (no I/O).

Per node: allocatable cpu/memory/`nvidia.com/gpu`/pods, labels, taints, readiness, addresses,
and `foreign`, the requests of the non-terminated pods gsch did not place. Pods gsch placed
carry the request-id label; their capacity is already held by the request's reservation in
the log, so counting them here too would count them twice.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from gsch.model.events import Taint
from gsch.model.ids import REQUEST_ID_KEY
from gsch.model.resources import QuantityError, Resources
from gsch.model.workload import WorkloadError, per_pod_amount

log = logging.getLogger(__name__)

REQUEST_ID_LABEL = REQUEST_ID_KEY  # marks the pods gsch placed (not counted as foreign)
HOSTNAME_LABEL = "kubernetes.io/hostname"
_TERMINATED = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class NodeFacts:
    """Everything about a node that ends up in a NodeDeclared event."""

    allocatable: Resources
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    addresses: tuple[str, ...]
    foreign: Resources = Resources()


@dataclass(frozen=True)
class _Pod:
    node: str
    amount: Resources
    ours: bool


def _node_facts(obj: dict[str, Any]) -> NodeFacts:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    try:
        allocatable = Resources.from_k8s(status.get("allocatable") or {})
    except QuantityError:
        log.warning("node with unreadable allocatable", extra={"node": metadata.get("name")})
        allocatable = Resources()
    taints = tuple(
        Taint(key=str(t.get("key", "")), effect=str(t.get("effect", "")),
              value=str(t.get("value") or ""))
        for t in spec.get("taints") or () if isinstance(t, dict)
    )  # fmt: skip
    conditions = status.get("conditions") or ()
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )
    # Internal addresses first: that is what a probe inside the cluster can reach.
    addresses = sorted(
        (a for a in status.get("addresses") or () if isinstance(a, dict) and a.get("address")),
        key=lambda a: a.get("type") != "InternalIP",
    )
    return NodeFacts(
        allocatable=allocatable,
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        taints=taints,
        ready=ready,
        addresses=tuple(str(a["address"]) for a in addresses),
    )


def _pod(obj: dict[str, Any]) -> _Pod | None:
    """The pod's node and requests, or None when it holds nothing on any node."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    node = spec.get("nodeName")
    if not node or status.get("phase") in _TERMINATED:
        return None
    labels = (obj.get("metadata") or {}).get("labels") or {}
    try:
        amount = per_pod_amount(spec, "spec")
    except (WorkloadError, QuantityError):
        amount = Resources(pods=1)  # it runs, so it holds a pod slot at least
    return _Pod(str(node), amount, REQUEST_ID_LABEL in labels)


def _pod_key(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


@dataclass
class ClusterInventory:
    nodes: dict[str, NodeFacts] = field(default_factory=dict)
    pods: dict[str, _Pod] = field(default_factory=dict)

    def reset_nodes(self, items: list[dict[str, Any]]) -> None:
        self.nodes = {}
        for obj in items:
            self.node_event("ADDED", obj)

    def node_event(self, kind: str, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        if not name:
            return
        if kind == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = _node_facts(obj)

    def reset_pods(self, items: list[dict[str, Any]]) -> None:
        self.pods = {}
        for obj in items:
            self.pod_event("ADDED", obj)

    def pod_event(self, kind: str, obj: dict[str, Any]) -> None:
        key = _pod_key(obj)
        found = None if kind == "DELETED" else _pod(obj)
        if found is None:
            self.pods.pop(key, None)
        else:
            self.pods[key] = found

    def facts(self) -> dict[str, NodeFacts]:
        """Every node with the foreign load of its pods."""
        foreign: dict[str, Resources] = {}
        for pod in self.pods.values():
            if not pod.ours:
                foreign[pod.node] = foreign.get(pod.node, Resources()) + pod.amount
        return {
            name: dataclasses.replace(facts, foreign=foreign.get(name, Resources()))
            for name, facts in self.nodes.items()
        }

    def pods_by_node(self) -> dict[str, tuple[str, ...]]:
        """`namespace/name` of the pods on each node (gsch's own included), sorted."""
        found: dict[str, list[str]] = {name: [] for name in self.nodes}
        for key, pod in self.pods.items():
            found.setdefault(pod.node, []).append(key)
        return {name: tuple(sorted(keys)) for name, keys in found.items()}

    def hostname(self, node: str) -> str:
        """The node's `kubernetes.io/hostname` label (what a pin selects on), or its name."""
        facts = self.nodes.get(node)
        return facts.labels.get(HOSTNAME_LABEL, node) if facts else node
