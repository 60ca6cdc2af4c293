"""What a workload manifest asks for: its pod template, replicas, and resource demand.

Per pod, Kubernetes reserves max(sum of containers, largest init container), each container
counting its requests, or its limits where requests are absent. A placement puts every
replica on the chosen node, so demand = per-pod amount x replicas, with `pods` = replicas.
"""

from __future__ import annotations

from typing import Any

from gsch.model.resources import QuantityError, Resources, resource_max

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "RuntimeClass",
        "IngressClass",
        "CSIDriver",
        "VolumeAttachment",
    }
)

# Where each pod-bearing kind keeps its pod spec, and how many pods it runs.
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


class WorkloadError(ValueError):
    """The manifest is not a workload gsch can place; `field` says where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def pod_spec_path(kind: str) -> tuple[str, ...] | None:
    """Where a pod-bearing kind keeps its pod spec (None: the kind runs no pods)."""
    return _TEMPLATE_PATHS.get(kind)


def pod_spec(document: dict[str, Any]) -> dict[str, Any] | None:
    path = _TEMPLATE_PATHS.get(str(document.get("kind")))
    if path is None:
        return None
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def pod_template(document: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template (the object holding `metadata` and `spec`) of a controller kind;
    None for a bare Pod and for kinds that run no pods."""
    path = _TEMPLATE_PATHS.get(str(document.get("kind")))
    if path is None or len(path) < 2:
        return None
    node: Any = document
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


# Where each kind keeps the number of pods it runs at once (default 1).
_COUNT_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "replicas"),
    "StatefulSet": ("spec", "replicas"),
    "ReplicaSet": ("spec", "replicas"),
    "Job": ("spec", "parallelism"),
    "CronJob": ("spec", "jobTemplate", "spec", "parallelism"),
}


def replicas(document: dict[str, Any], where: str) -> int:
    path = _COUNT_PATHS.get(str(document.get("kind")))
    if path is None:
        return 1
    value: Any = document
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WorkloadError(
            f"{where}." + ".".join(path), f"must be a non-negative integer, got {value!r}"
        )
    return value


def _container_amount(container: Any, where: str) -> Resources:
    if not isinstance(container, dict):
        raise WorkloadError(where, "a container must be an object")
    resources = container.get("resources") or {}
    if not isinstance(resources, dict):
        raise WorkloadError(f"{where}.resources", "must be an object")
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    if not isinstance(requests, dict) or not isinstance(limits, dict):
        raise WorkloadError(f"{where}.resources", "requests and limits must be objects")
    # Kubernetes defaults a missing request to the limit, resource by resource.
    merged = {**limits, **requests}
    try:
        return Resources.from_k8s(merged)
    except QuantityError as exc:
        raise WorkloadError(f"{where}.resources", str(exc)) from exc


def per_pod_amount(spec: dict[str, Any], where: str) -> Resources:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise WorkloadError(f"{where}.containers", "a pod needs at least one container")
    total = Resources(pods=1)
    for index, container in enumerate(containers):
        total = total + _container_amount(container, f"{where}.containers[{index}]")
    init_containers = spec.get("initContainers") or []
    if not isinstance(init_containers, list):
        raise WorkloadError(f"{where}.initContainers", "must be a list")
    init = Resources()
    for index, container in enumerate(init_containers):
        init = resource_max(init, _container_amount(container, f"{where}.initContainers[{index}]"))
    return resource_max(total, init + Resources(pods=1))


def demand_of(documents: tuple[dict[str, Any], ...]) -> Resources:
    total = Resources()
    for index, document in enumerate(documents):
        spec = pod_spec(document)
        if spec is None:
            continue
        path = _TEMPLATE_PATHS[str(document["kind"])]
        where = f"workload[{index}]." + ".".join(path)
        count = replicas(document, f"workload[{index}]")
        total = total + per_pod_amount(spec, where).scaled(count)
    return total


def node_selector_of(documents: tuple[dict[str, Any], ...]) -> dict[str, str]:
    for document in documents:
        spec = pod_spec(document)
        if spec is not None and isinstance(spec.get("nodeSelector"), dict):
            return {str(k): str(v) for k, v in spec["nodeSelector"].items()}
    return {}


def check_documents(documents: tuple[dict[str, Any], ...], allowed_kinds: frozenset[str]) -> None:
    if not documents:
        raise WorkloadError("workload", "is required: at least one Kubernetes manifest")
    for index, document in enumerate(documents):
        where = f"workload[{index}]"
        if not isinstance(document, dict):
            raise WorkloadError(where, "must be a Kubernetes manifest object")
        kind = document.get("kind")
        if not isinstance(kind, str) or not kind:
            raise WorkloadError(f"{where}.kind", "is required")
        if not isinstance(document.get("apiVersion"), str):
            raise WorkloadError(f"{where}.apiVersion", "is required")
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
            raise WorkloadError(f"{where}.metadata.name", "is required")
        if kind in CLUSTER_SCOPED_KINDS:
            raise WorkloadError(
                f"{where}.kind", f"{kind} is cluster-scoped; only namespaced workloads are placed"
            )
        if kind not in allowed_kinds:
            raise WorkloadError(
                f"{where}.kind",
                f"{kind} is not an allowed kind (allowed: {', '.join(sorted(allowed_kinds))})",
            )
