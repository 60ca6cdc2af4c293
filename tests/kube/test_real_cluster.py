"""Against a real cluster (kind, k3d...): runs only when KUBECONFIG names a reachable one.

kind create cluster --name gsch            # or: k3d cluster create gsch
KUBECONFIG=~/.kube/config pytest -m realcluster tests/kube/test_real_cluster.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsch.kube.client import KubeClient, KubeError
from gsch.kube.inventory import ClusterInventory
from gsch.kube.member import MemberCluster
from gsch.model.request import Policy, Request
from gsch.runtime.config import Config, MemberConfig

pytestmark = pytest.mark.realcluster


@pytest.fixture
async def real_client() -> AsyncIterator[KubeClient]:
    path = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    if not path or not Path(path).is_file():  # noqa: ASYNC240 (one stat, before any I/O)
        pytest.skip("KUBECONFIG does not name a cluster")
    try:
        client = await KubeClient.connect(path, None, timeout=5.0)
        await client.call("GET", "/version")
    except (KubeError, OSError, ValueError) as exc:
        pytest.skip(f"the cluster in KUBECONFIG is not reachable: {exc}")
    try:
        yield client
    finally:
        await client.close()


async def test_apply_pins_and_removes_on_a_real_cluster(real_client: KubeClient) -> None:
    nodes = (await real_client.call("GET", "/api/v1/nodes")).get("items") or []
    assert nodes, "a cluster has nodes"
    inventory = ClusterInventory()
    inventory.reset_nodes(nodes)
    node = sorted(inventory.nodes)[0]
    namespace = f"gsch-test-{uuid.uuid4().hex[:8]}"
    container = {"name": "c", "image": "registry.k8s.io/pause:3.9"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
           "spec": {"containers": [container]}}  # fmt: skip
    request = Request(request_id="real-1", policy=Policy.SELECTED_CLUSTER, mode="cluster",
                      namespace=namespace, workload=(pod,))  # fmt: skip
    member = MemberCluster("real", MemberConfig(), Config(), None, real_client)  # type: ignore[arg-type]
    member.inventory = inventory
    try:
        await member.apply("real-1", request, node)
        await member.apply("real-1", request, node)  # again: harmless
        applied = await real_client.call("GET", f"/api/v1/namespaces/{namespace}/pods/probe")
        assert applied["spec"]["nodeSelector"]["kubernetes.io/hostname"] == inventory.hostname(node)
        assert applied["metadata"]["labels"]["gsch.io/request-id"] == "real-1"
        await member.remove("real-1", request)
    finally:
        await real_client.call("DELETE", f"/api/v1/namespaces/{namespace}")
