"""Apply a request's objects to one cluster, all or none, and remove them again.

Server-side apply with field manager `gsch` and `force`: applying the same objects again (a
redelivered binding) changes nothing. Before applying, each object that already exists must
carry this request's label; gsch never takes over an object someone else made. When one
document is refused, the ones applied before it are deleted, so a failed binding leaves
nothing behind and the retry on another cluster starts clean. The namespace is created when
missing and kept (other requests of the project share it).

gsch holds no workload rights cluster-wide (`config/rbac/gsch-member.yaml`): it creates a
namespace labelled `gsch.io/managed` and with the Pod Security Admission level of the
request's project (the member cluster enforces it too), then binds its ClusterRole
`gsch-workloads` to itself in that namespace with a RoleBinding. A namespace gsch did not
create works once an operator made that RoleBinding (the shipped admission policy refuses
gsch a RoleBinding in a namespace without the label).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gsch.kube.client import KubeApiError, KubeClient, KubeError
from gsch.kube.kinds import describe, object_path

log = logging.getLogger(__name__)

MANAGED_LABEL = "gsch.io/managed"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
WORKLOADS_ROLE = "gsch-workloads"  # the ClusterRole gsch binds in each namespace it manages
RBAC = "/apis/rbac.authorization.k8s.io/v1"


@dataclass(frozen=True)
class NamespacePlan:
    """How gsch makes a namespace it applies into: its Pod Security level, and the service
    account (`namespace/name`) that gets `gsch-workloads` there."""

    pod_security: str
    service_account: tuple[str, str]


Owned = Callable[[dict[str, Any]], bool]


class ApplyError(Exception):
    """The cluster refused the objects (or could not be reached); the message says why, with
    the API's status and reason (Forbidden, Invalid, quota...)."""


def _reason(document: dict[str, Any], exc: KubeError) -> str:
    return f"{describe(document)}: {exc}"


async def _create_unless_present(client: KubeClient, path: str, body: dict[str, Any]) -> None:
    """GET, and POST to the collection when missing; a concurrent create (409) is fine."""
    try:
        await client.call("GET", f"{path}/{body['metadata']['name']}")
        return
    except KubeApiError as exc:
        if exc.status != 404:
            raise
    try:
        await client.call("POST", path, body=body)
    except KubeApiError as exc:
        if exc.status != 409:
            raise


async def ensure_namespace(client: KubeClient, name: str, plan: NamespacePlan) -> None:
    labels = {MANAGED_LABEL: "true", ENFORCE_LABEL: plan.pod_security}
    await _create_unless_present(client, "/api/v1/namespaces",
                                 {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name, "labels": labels}})  # fmt: skip
    account_namespace, account = plan.service_account
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": WORKLOADS_ROLE, "namespace": name, "labels": {MANAGED_LABEL: "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": WORKLOADS_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": account,
                      "namespace": account_namespace}],
    }  # fmt: skip
    await _create_unless_present(client, f"{RBAC}/namespaces/{name}/rolebindings", binding)


async def _existing(client: KubeClient, document: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return await client.call("GET", object_path(document))
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


async def apply_all(
    client: KubeClient,
    documents: list[dict[str, Any]],
    owner: str,
    manager: str,
    owned: Owned,
    plan: NamespacePlan,
) -> None:
    """Apply every document or none; `owned(obj)` says whether an existing object is ours."""
    if not documents:
        return
    namespace = documents[0]["metadata"]["namespace"]
    applied: list[dict[str, Any]] = []
    try:
        try:
            await ensure_namespace(client, namespace, plan)
        except KubeError as exc:
            raise ApplyError(f"namespace {namespace}: {exc}") from exc
        for document in documents:
            try:
                existing = await _existing(client, document)
                if existing is not None and not owned(existing):
                    raise ApplyError(f"{describe(document)} exists and was not placed by {owner}")
                await client.apply(object_path(document), document, manager)
            except KubeError as exc:
                raise ApplyError(_reason(document, exc)) from exc
            applied.append(document)
    except ApplyError:
        await _delete_quietly(client, applied)
        raise


async def _delete_quietly(client: KubeClient, documents: list[dict[str, Any]]) -> None:
    for document in reversed(documents):
        try:
            await _delete(client, document)
        except KubeError as exc:
            log.warning("rollback left an object", extra={"object": describe(document),
                                                          "error": str(exc)})  # fmt: skip


async def _delete(client: KubeClient, document: dict[str, Any]) -> None:
    try:
        query = {"propagationPolicy": "Background"}
        await client.call("DELETE", object_path(document), query=query)
    except KubeApiError as exc:
        if exc.status != 404:
            raise


async def remove_all(client: KubeClient, documents: list[dict[str, Any]], owned: Owned) -> None:
    """Delete the documents that exist and are ours, last first."""
    for document in reversed(documents):
        try:
            existing = await _existing(client, document)
            if existing is not None and owned(existing):
                await _delete(client, document)
        except KubeError as exc:
            raise ApplyError(_reason(document, exc)) from exc
