"""A member cluster applies only the kinds it allows, and never cluster-scoped ones, whatever
arrives (an agent cannot trust that the centre checked)."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client as k8s_client

from gsch.kube.applier import ApplyError
from gsch.kube.client import KubeClient
from gsch.kube.member import MemberCluster
from gsch.model.request import Policy, Request
from gsch.runtime.config import Config, MemberConfig


def member(allowed: list[str] | None) -> MemberCluster:
    configuration = k8s_client.Configuration(host="http://127.0.0.1:9")
    client = KubeClient(k8s_client.ApiClient(configuration=configuration))
    settings = MemberConfig(allowed_kinds=allowed)
    return MemberCluster("m", settings, Config(), None, client)  # type: ignore[arg-type]


def request(kind: str) -> Request:
    document = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}
    return Request(request_id="r", policy=Policy.SELECTED_CLUSTER, mode="cluster",
                   workload=(document,))  # fmt: skip


@pytest.mark.parametrize(
    ("allowed", "kind"),
    [(["Pod"], "Secret"), (None, "ClusterRoleBinding"), (["Namespace"], "Namespace")],
)
async def test_refused_kinds(allowed: list[str] | None, kind: str) -> None:
    with pytest.raises(ApplyError, match=f"does not accept kind {kind}"):
        await member(allowed).apply("r", request(kind), "n1")


async def test_allowed_kinds_pass() -> None:
    prepared = member(["ConfigMap"])._documents("r", request("ConfigMap"), "n1")
    assert prepared[0]["metadata"]["namespace"] == "default"
