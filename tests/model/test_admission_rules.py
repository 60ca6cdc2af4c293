"""gsch's own admission rules at intake: namespaces a project owns, nodeName, tolerate-all,
service accounts, Service externalIPs, and the project exemptions (issue 11: a submitter named
kube-system, or project kube + workspace system, set nodeName, tolerated every taint and ran as
a kube-system service account, and all were bound)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gsch.model.admission.rules import AdmissionRules, ProjectAdmission, Rule
from gsch.model.intake import IntakeRules
from gsch.model.request import Request
from tests.support.intake import RULES, decode, native, pod

PROJECTS = AdmissionRules(
    projects={
        "team": ProjectAdmission(namespaces=frozenset({"shared-tools"})),
        "team-prod": ProjectAdmission(),
        "ops": ProjectAdmission(
            allow=frozenset({Rule.NODE_NAME, Rule.TOLERATE_ALL, Rule.EXTERNAL_IPS}),
            service_accounts=frozenset({"builder"}),
        ),
    },
    denied_namespaces=frozenset({"billing"}),
    denied_service_accounts=frozenset({"admin"}),
)
WITH_PROJECTS = dataclasses.replace(RULES, admission=PROJECTS)


def reason(rules: IntakeRules = WITH_PROJECTS, **fields: Any) -> str:
    result = decode(native(**fields), rules)
    return "" if isinstance(result, Request) else result.reason


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"namespace": "kube-system"}, "kube-* namespaces belong to the cluster itself"),
        ({"project_name": "kube", "workspace_name": "system"}, "kube-* namespaces"),
        ({"namespace": "gsch-system"}, "gsch's own namespace"),
        ({"project_name": "gsch", "workspace_name": "system"}, "gsch's own namespace"),
        ({"namespace": "billing"}, "on the installation's deny list"),
        ({"namespace": "team-a"}, "a request without a project may use only the shared"),
        ({"project_name": "team", "workspace_name": "w", "namespace": "default"},
         "project 'team' owns 'team-w' and the namespaces it lists, not this one"),
        ({"project_name": "team", "workspace_name": "w", "namespace": "team-other"},
         "not this one"),
        # Project "team", workspace "prod-x" would land in project "team-prod"'s namespace.
        ({"project_name": "team", "workspace_name": "prod-x"},
         "it belongs to project 'team-prod'"),
        ({"project_name": "ops", "workspace_name": "w", "namespace": "shared-tools"},
         "it belongs to project 'team'"),
        ({"project_name": "Team", "workspace_name": "w"}, "not a Kubernetes namespace name"),
    ],
)  # fmt: skip
def test_namespaces_a_request_may_not_use(fields: dict[str, Any], why: str) -> None:
    got = reason(**fields)
    assert got.startswith("namespace: "), got
    assert 'forbidden by gsch admission rule "namespace"' in got, got
    assert why in got, got


def test_kube_system_by_project_says_where_it_came_from() -> None:
    assert reason(project_name="kube", workspace_name="system") == (
        "namespace: 'kube-system' (from project 'kube' and workspace 'system') is forbidden by"
        ' gsch admission rule "namespace" (kube-* namespaces belong to the cluster itself)'
    )


@pytest.mark.parametrize(
    "fields",
    [
        {},  # no project: the shared namespace "default"
        {"namespace": "default"},
        {"project_name": "team", "workspace_name": "w"},
        {"project_name": "team", "workspace_name": "w", "namespace": "team-w"},
        {"project_name": "team", "workspace_name": "w", "namespace": "shared-tools"},
        {"project_name": "team-prod", "workspace_name": "x"},
        {"project_name": "unlisted", "workspace_name": "w"},  # default rules apply
    ],
)
def test_namespaces_a_request_may_use(fields: dict[str, Any]) -> None:
    assert reason(**fields) == ""


def test_a_manifest_cannot_name_another_namespace() -> None:
    workload = pod()
    workload["metadata"]["namespace"] = "kube-system"
    got = reason(workload=workload, project_name="team", workspace_name="w")
    assert got == (
        'workload[0].metadata.namespace: forbidden by gsch admission rule "namespace"'
        " ('kube-system' is not the request's namespace 'team-w')"
    )


def test_node_name_is_refused_unless_the_project_allows_it() -> None:
    got = reason(workload=pod(nodeName="edge-1-w1"), project_name="team", workspace_name="w")
    assert got.startswith('workload[0].spec.nodeName: forbidden by gsch admission rule "node-name"')
    assert reason(workload=pod(nodeName="edge-1-w1"), project_name="ops", workspace_name="w") == ""


@pytest.mark.parametrize(
    "toleration", [{"operator": "Exists"}, {"operator": "Exists", "key": "", "effect": ""}]
)
def test_tolerating_every_taint_is_refused(toleration: dict[str, Any]) -> None:
    workload = pod(tolerations=[{"key": "gpu", "operator": "Exists"}, toleration])
    got = reason(workload=workload, project_name="team", workspace_name="w")
    assert got.startswith(
        'workload[0].spec.tolerations[1]: forbidden by gsch admission rule "tolerate-all"'
    ), got
    assert reason(workload=workload, project_name="ops", workspace_name="w") == ""


@pytest.mark.parametrize(
    ("account", "why"),
    [
        ("system:serviceaccount:kube-system:clusterrole-aggregation-controller",
         "not a service account name of the pod's own namespace"),
        ("admin", "on the installation's deny list"),
        ("deployer", "is not one of the project's (builder, default)"),
    ],
)  # fmt: skip
def test_foreign_service_accounts_are_refused(account: str, why: str) -> None:
    got = reason(workload=pod(serviceAccountName=account), project_name="ops", workspace_name="w")
    assert got.startswith(
        'workload[0].spec.serviceAccountName: forbidden by gsch admission rule "service-account"'
    ), got
    assert why in got, got
    # The deprecated spelling is checked as well.
    got = reason(workload=pod(serviceAccount=account), project_name="ops", workspace_name="w")
    assert got.startswith("workload[0].spec.serviceAccount: "), got


def test_service_accounts_of_the_project_pass() -> None:
    for account in ("builder", "default"):
        workload = pod(serviceAccountName=account)
        assert reason(workload=workload, project_name="ops", workspace_name="w") == ""
    # A project without a list may use any account of its namespace but the denied ones.
    assert reason(workload=pod(serviceAccountName="deployer"), project_name="team",
                  workspace_name="w") == ""  # fmt: skip


def test_service_external_ips_are_refused_unless_allowed() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
               "spec": {"ports": [{"port": 80}], "externalIPs": ["10.0.0.1"]}}  # fmt: skip
    got = reason(workload=[pod(), service], project_name="team", workspace_name="w")
    assert got.startswith(
        'workload[1].spec.externalIPs: forbidden by gsch admission rule "external-ips"'
    ), got
    assert reason(workload=[pod(), service], project_name="ops", workspace_name="w") == ""


def test_shared_namespaces_can_be_closed() -> None:
    closed = dataclasses.replace(RULES, admission=AdmissionRules(shared_namespaces=frozenset()))
    got = reason(closed)
    assert "a request without a project may use only the shared namespaces: none" in got, got
