"""The member RBAC in config/rbac: valid Kubernetes objects, no workload rights cluster-wide,
and admission policies (evaluated with a CEL interpreter) that confine what gsch may create
with its cluster-wide namespace and RoleBinding rights (issue 11: the shipped member RBAC
allowed the workload verbs in every namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml

from gsch.kube.applier import ENFORCE_LABEL, MANAGED_LABEL, WORKLOADS_ROLE
from gsch.kube.kinds import plural
from gsch.model.admission.pod_security import PodTemplate, pod_security_violations
from gsch.model.admission.rules import PodSecurityLevel
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS

RBAC = Path(__file__).resolve().parents[2] / "config" / "rbac"
MEMBER = list(yaml.safe_load_all((RBAC / "gsch-member.yaml").read_text()))
AGENT = list(yaml.safe_load_all((RBAC / "gsch-agent.yaml").read_text()))
GSCH = "system:serviceaccount:gsch-system:gsch"
WORKLOAD_VERBS = {"create", "patch", "update", "delete", "deletecollection", "*"}


def named(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in MEMBER if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize(
    "document", MEMBER + AGENT, ids=lambda d: d["kind"] + "/" + d["metadata"]["name"]
)
def test_every_object_is_valid_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_no_cluster_wide_binding_grants_workload_verbs() -> None:
    bound = {d["roleRef"]["name"] for d in MEMBER if d["kind"] == "ClusterRoleBinding"}
    assert WORKLOADS_ROLE not in bound
    for name in bound:
        for rule in named("ClusterRole", name)["rules"]:
            resources = set(rule["resources"])
            writes = set(rule["verbs"]) & WORKLOAD_VERBS
            # Cluster-wide writes: creating namespaces and RoleBindings, nothing else.
            assert not writes or resources <= {"namespaces", "rolebindings"}, rule
            assert "*" not in rule["verbs"], rule
            assert "*" not in resources, rule
            if "bind" in rule["verbs"]:
                assert rule["resourceNames"] == [WORKLOADS_ROLE], rule
            assert not {"escalate", "impersonate"} & set(rule["verbs"]), rule


def test_gsch_workloads_grants_exactly_the_allowed_kinds() -> None:
    granted = {
        r for rule in named("ClusterRole", WORKLOADS_ROLE)["rules"] for r in rule["resources"]
    }
    assert granted == {plural(kind) for kind in DEFAULT_ALLOWED_KINDS}
    assert "secrets" not in granted  # Secret is not allowed by default


def _policy(name: str) -> dict[str, Any]:
    return named("ValidatingAdmissionPolicy", name)


def admitted(policy: str, obj: dict[str, Any], namespace: dict[str, Any] | None = None,
             user: str = GSCH) -> bool:  # fmt: skip
    """What the API server decides: a policy applies when its match conditions hold; any
    validation that is false, or fails to evaluate (failurePolicy Fail), denies."""
    spec = _policy(policy)["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert named("ValidatingAdmissionPolicyBinding", policy)["spec"]["validationActions"] == [
        "Deny"
    ]
    env = celpy.Environment()
    activation = {"object": obj, "request": {"userInfo": {"username": user}},
                  "namespaceObject": namespace}  # fmt: skip
    context = {k: celpy.json_to_cel(v) for k, v in activation.items()}

    def holds(expression: str) -> bool:
        try:
            return bool(env.program(env.compile(expression)).evaluate(context))
        except celpy.CELEvalError:
            return False

    if not all(holds(c["expression"]) for c in spec["matchConditions"]):
        return True
    return all(holds(v["expression"]) for v in spec["validations"])


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


MANAGED = {MANAGED_LABEL: "true", ENFORCE_LABEL: "baseline"}


def test_gsch_creates_only_labelled_namespaces_of_its_own() -> None:
    assert admitted("gsch-namespaces", namespace("p1-w1", **MANAGED))
    assert not admitted("gsch-namespaces", namespace("p1-w1"))
    assert not admitted("gsch-namespaces", namespace("p1-w1", **{MANAGED_LABEL: "true"}))
    for reserved in ("kube-system", "kube-public", "default", "gsch-system"):
        assert not admitted("gsch-namespaces", namespace(reserved, **MANAGED))
    # Other users are not this policy's business.
    assert admitted("gsch-namespaces", namespace("kube-x"), user="kubernetes-admin")


def rolebinding(role: str = WORKLOADS_ROLE, **subject: str) -> dict[str, Any]:
    return {
        "metadata": {"name": WORKLOADS_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "gsch", "namespace": "gsch-system",
                      **subject}],
    }  # fmt: skip


def test_gsch_binds_only_its_workload_role_to_itself_in_managed_namespaces() -> None:
    managed = namespace("p1-w1", **MANAGED)
    assert admitted("gsch-rolebindings", rolebinding(), managed)
    assert not admitted("gsch-rolebindings", rolebinding("cluster-admin"), managed)
    assert not admitted(
        "gsch-rolebindings", rolebinding(name="default", namespace="p1-w1"), managed
    )
    assert not admitted("gsch-rolebindings", rolebinding(), namespace("kube-system"))
    assert not admitted("gsch-rolebindings", rolebinding(), None)


def test_the_agent_itself_passes_restricted() -> None:
    deployment = next(d for d in AGENT if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    pod = PodTemplate(template["spec"], template["metadata"], "spec.template.spec",
                      "spec.template.metadata")  # fmt: skip
    assert pod_security_violations(pod, PodSecurityLevel.RESTRICTED) == []
    gsch_namespace = named("Namespace", "gsch-system")
    assert gsch_namespace["metadata"]["labels"][ENFORCE_LABEL] == "restricted"
