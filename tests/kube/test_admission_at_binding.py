"""What a member cluster receives, against the fake API server: a namespace labelled for gsch
and its project's Pod Security level with gsch's RoleBinding in it, Secrets opened only at the
last step, and a forged workload refused although the log says it was accepted (issue 11: an
accepted-and-placed ClusterRoleBinding appended by an unauthenticated client was applied)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gsch.kube.applier import ApplyError
from gsch.kube.client import KubeClient
from gsch.kube.member import MemberCluster
from gsch.model.admission.secrets import seal_secrets
from gsch.model.request import Policy, Request
from gsch.runtime.admission import admission_rules
from gsch.runtime.config import Config, MemberConfig, load_config
from tests.fakekube.server import FakeKube, write_kubeconfig

RBAC_GROUP = "/apis/rbac.authorization.k8s.io/v1"


@dataclass
class Cluster:
    server: FakeKube
    client: KubeClient

    def member(self, config: Config) -> MemberCluster:
        return MemberCluster("m", MemberConfig(), config, None, self.client)  # type: ignore[arg-type]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    server = FakeKube("m")
    await server.start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"m": server})
    client = await KubeClient.connect(str(kubeconfig), "m", timeout=2.0)
    try:
        yield Cluster(server, client)
    finally:
        await client.close()
        await server.stop()


def request(*documents: dict[str, Any], project: str = "p1") -> Request:
    return Request(request_id="r-1", policy=Policy.MOST_REQUESTED, mode="default",
                   project_name=project, workspace_name="w1", workload=documents)  # fmt: skip


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}  # fmt: skip


async def test_gsch_makes_a_labelled_namespace_and_binds_its_role_there(cluster: Cluster) -> None:
    config = load_config(None, {"projects": {"p1": {"pod_security": "restricted"}}}, environ={})
    hardened = pod()
    hardened["spec"]["securityContext"] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    hardened["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}  # fmt: skip
    await cluster.member(config).apply("r-1", request(hardened), "n1")
    namespace = cluster.server.get("v1", "Namespace", None, "p1-w1")
    assert namespace is not None
    assert namespace["metadata"]["labels"] == {
        "gsch.io/managed": "true", "pod-security.kubernetes.io/enforce": "restricted"}  # fmt: skip
    binding = cluster.server.get(
        "rbac.authorization.k8s.io/v1", "RoleBinding", "p1-w1", "gsch-workloads"
    )
    assert binding is not None
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "gsch-workloads"}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gsch",
                                    "namespace": "gsch-system"}]  # fmt: skip
    assert cluster.server.get("v1", "Pod", "p1-w1", "p") is not None
    # A second binding finds both in place and creates neither again.
    creations = cluster.server.creations
    await cluster.member(config).apply("r-1", request(hardened), "n1")
    assert ("POST", f"{RBAC_GROUP}/namespaces/p1-w1/rolebindings") not in cluster.server.calls[-4:]
    assert cluster.server.creations == creations


@pytest.mark.parametrize(
    ("workload", "project", "expected"),
    [
        (pod(hostNetwork=True), "p1", "spec.hostNetwork: forbidden by Pod Security Standard"),
        (pod(nodeName="n1"), "p1", 'rule "node-name"'),
        (pod(), "kube", "'kube-w1' (from project 'kube'"),
    ],
)
async def test_a_forged_acceptance_is_refused_at_the_cluster(
    cluster: Cluster, workload: dict[str, Any], project: str, expected: str
) -> None:
    with pytest.raises(ApplyError, match="m refuses the workload") as refused:
        await cluster.member(Config()).apply("r-1", request(workload, project=project), "n1")
    assert expected in str(refused.value)
    assert cluster.server.of_kind("Pod") == []


async def test_a_sealed_secret_reaches_the_cluster_opened(cluster: Cluster, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef" * 4)
    overrides = {"admission": {"secret_key_file": str(key_file)},
                 "intake": {"allowed_kinds": ["Pod", "Secret"]}}  # fmt: skip
    config = load_config(None, overrides, environ={})
    value = base64.b64encode(b"s3cret").decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
              "data": {"password": value}}  # fmt: skip
    sealed = seal_secrets((secret,), "p1-w1", admission_rules(config).secret_key)
    assert sealed[0]["data"]["password"] != value
    await cluster.member(config).apply("r-1", request(*sealed), "n1")
    applied = cluster.server.get("v1", "Secret", "p1-w1", "db")
    assert applied is not None
    assert applied["data"] == {"password": value}
    # A binder without the key refuses rather than applying ciphertext.
    without = load_config(None, {"intake": {"allowed_kinds": ["Pod", "Secret"]}}, environ={})
    with pytest.raises(ApplyError, match=r"needs admission\.secret_key_file"):
        await cluster.member(without).apply("r-2", request(*sealed), "n1")
