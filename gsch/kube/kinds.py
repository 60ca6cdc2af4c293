"""Where a kind lives in the Kubernetes REST API: `/api/v1/...` for the core group,
`/apis/<group>/<version>/...` otherwise, and the plural resource name.

A fixed table instead of discovery: gsch applies only an allow-listed set of namespaced
kinds, and asking every member cluster for its discovery documents on each binding would cost
round trips for no gain. Kinds outside the table fall back to Kubernetes' own pluralisation.
"""

from __future__ import annotations

from typing import Any

_PLURALS = {
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Namespace": "namespaces",
    "Node": "nodes",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
    "Endpoints": "endpoints",
}


def plural(kind: str) -> str:
    known = _PLURALS.get(kind)
    if known is not None:
        return known
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def group_prefix(api_version: str) -> str:
    """`/api/v1` for the core group, `/apis/apps/v1` for a named one."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    base = group_prefix(api_version)
    if namespace is None:
        return f"{base}/{plural(kind)}"
    return f"{base}/namespaces/{namespace}/{plural(kind)}"


def object_path(document: dict[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    namespace = metadata.get("namespace")
    path = collection_path(str(document["apiVersion"]), str(document["kind"]), namespace)
    return f"{path}/{metadata['name']}"


def describe(document: dict[str, Any]) -> str:
    """`Deployment p1-w1/web` for messages."""
    metadata = document.get("metadata") or {}
    namespace = metadata.get("namespace")
    where = f"{namespace}/" if namespace else ""
    return f"{document.get('kind')} {where}{metadata.get('name')}"
