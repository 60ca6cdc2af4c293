"""Pod Security Standards at intake: every control, on every pod template of every kind, with
the field and the rule named in the rejection (issue 11: privileged pods, hostPath /, host
network and PID, SYS_ADMIN were all accepted and bound)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from gsch.model.admission.rules import AdmissionRules, PodSecurityLevel, ProjectAdmission
from gsch.model.intake import IntakeRules
from gsch.model.request import Request
from gsch.runtime.config import DEFAULT_ALLOWED_KINDS
from tests.support.intake import RULES, decode, native

KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
RULES_ALL_KINDS = dataclasses.replace(
    RULES, allowed_kinds=frozenset({*DEFAULT_ALLOWED_KINDS, "ReplicaSet"})
)
# Where each kind keeps its pod spec, as a rejection names it.
SPEC_PATH = {
    "Pod": "spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}


def spec_path(kind: str) -> str:
    return SPEC_PATH.get(kind, "spec.template.spec")


def manifest(kind: str, spec: dict[str, Any], pod_metadata: dict[str, Any] | None = None) -> dict:
    """A `kind` whose pod template has `spec` (and `pod_metadata`)."""
    metadata = pod_metadata or {}
    template = {"metadata": metadata, "spec": spec}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w"}}
    if kind == "Pod":
        body["metadata"].update(metadata)
        body["spec"] = spec
    elif kind == "CronJob":
        body["apiVersion"] = "batch/v1"
        body["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        body["apiVersion"] = "batch/v1" if kind == "Job" else "apps/v1"
        body["spec"] = {"template": template}
    return body


def container(**security: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": "c", "image": "busybox"}
    if security:
        result["securityContext"] = security
    return result


def at_level(level: PodSecurityLevel, project: str = "p1") -> IntakeRules:
    admission = AdmissionRules(projects={project: ProjectAdmission(pod_security=level)})
    return dataclasses.replace(RULES_ALL_KINDS, admission=admission)


def reason(workload: dict[str, Any], rules: IntakeRules = RULES_ALL_KINDS, **fields: Any) -> str:
    """The rejection reason of a request carrying `workload` ("" when accepted)."""
    result = decode(native(workload=workload, **fields), rules)
    return "" if isinstance(result, Request) else result.reason


BASELINE_VIOLATIONS: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, pod spec, field under the spec, control)
    ("privileged", {"containers": [container(privileged=True)]},
     "containers[0].securityContext.privileged", "Privileged Containers"),
    ("host-network", {"hostNetwork": True, "containers": [container()]},
     "hostNetwork", "Host Namespaces"),
    ("host-pid", {"hostPID": True, "containers": [container()]}, "hostPID", "Host Namespaces"),
    ("host-ipc", {"hostIPC": True, "containers": [container()]}, "hostIPC", "Host Namespaces"),
    ("host-path-root",
     {"containers": [container()], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
     "volumes[0].hostPath", "HostPath Volumes"),
    ("sys-admin", {"containers": [container(capabilities={"add": ["SYS_ADMIN"]})]},
     "containers[0].securityContext.capabilities.add[0]", "Capabilities"),
    ("host-port", {"containers": [{**container(), "ports": [{"containerPort": 80,
                                                              "hostPort": 80}]}]},
     "containers[0].ports[0].hostPort", "Host Ports"),
    ("host-process", {"securityContext": {"windowsOptions": {"hostProcess": True}},
                      "containers": [container()]},
     "securityContext.windowsOptions.hostProcess", "HostProcess"),
    ("apparmor-unconfined", {"containers": [container(appArmorProfile={"type": "Unconfined"})]},
     "containers[0].securityContext.appArmorProfile.type", "AppArmor"),
    ("selinux-type", {"containers": [container(seLinuxOptions={"type": "spc_t"})]},
     "containers[0].securityContext.seLinuxOptions.type", "SELinux"),
    ("selinux-user", {"securityContext": {"seLinuxOptions": {"user": "system_u"}},
                      "containers": [container()]},
     "securityContext.seLinuxOptions.user", "SELinux"),
    ("proc-mount", {"containers": [container(procMount="Unmasked")]},
     "containers[0].securityContext.procMount", "/proc Mount Type"),
    ("seccomp-unconfined", {"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                            "containers": [container()]},
     "securityContext.seccompProfile.type", "Seccomp"),
    ("sysctl", {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
                "containers": [container()]},
     "securityContext.sysctls[0].name", "Sysctls"),
    ("probe-host", {"containers": [{**container(), "livenessProbe": {
        "httpGet": {"host": "169.254.169.254", "port": 80}}}]},
     "containers[0].livenessProbe.httpGet.host", "Host Probes / Lifecycle Hooks"),
    ("init-privileged", {"containers": [container()],
                         "initContainers": [container(privileged=True)]},
     "initContainers[0].securityContext.privileged", "Privileged Containers"),
    ("ephemeral-privileged", {"containers": [container()],
                              "ephemeralContainers": [container(privileged=True)]},
     "ephemeralContainers[0].securityContext.privileged", "Privileged Containers"),
    ("privileged-as-string", {"containers": [container(privileged="true")]},
     "containers[0].securityContext.privileged", "Privileged Containers"),
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("spec", "field", "control"),
    [case[1:] for case in BASELINE_VIOLATIONS],
    ids=[case[0] for case in BASELINE_VIOLATIONS],
)
def test_baseline_refuses_each_control_in_every_kind(
    kind: str, spec: dict[str, Any], field: str, control: str
) -> None:
    got = reason(manifest(kind, copy.deepcopy(spec)))
    expected = f'workload.{spec_path(kind)}.{field}: forbidden by Pod Security Standard "baseline"'
    assert got.replace("workload[0]", "workload").startswith(expected), got
    assert f"({control}" in got


@pytest.mark.parametrize(("spec", "field", "control"), [c[1:] for c in BASELINE_VIOLATIONS])
def test_a_privileged_project_may_do_all_of_it(
    spec: dict[str, Any], field: str, control: str
) -> None:
    rules = at_level(PodSecurityLevel.PRIVILEGED)
    assert reason(manifest("Deployment", spec), rules, project_name="p1", workspace_name="w") == ""


def test_the_issue_message_for_a_privileged_pod() -> None:
    got = reason(manifest("Pod", {"containers": [container(privileged=True)]}))
    assert got == (
        "workload[0].spec.containers[0].securityContext.privileged: "
        'forbidden by Pod Security Standard "baseline" (Privileged Containers)'
    )


def test_allowed_values_pass_baseline() -> None:
    spec = {
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}],
            "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
        },
        "hostNetwork": False,
        "containers": [
            {
                **container(
                    privileged=False,
                    capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"]},
                    procMount="Default",
                    appArmorProfile={"type": "RuntimeDefault"},
                ),
                "ports": [{"containerPort": 80, "hostPort": 0}],
                "readinessProbe": {"httpGet": {"port": 80, "host": ""}},
            }
        ],
        "volumes": [{"name": "cache", "emptyDir": {}}],
    }
    annotations = {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}
    assert reason(manifest("Deployment", spec, {"annotations": annotations})) == ""


def test_apparmor_annotation_unconfined_is_refused() -> None:
    annotations = {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}
    got = reason(
        manifest("Deployment", {"containers": [container()]}, {"annotations": annotations})
    )
    assert got.startswith(
        "workload[0].spec.template.metadata.annotations["
        "'container.apparmor.security.beta.kubernetes.io/c']: "
        'forbidden by Pod Security Standard "baseline" (AppArmor'
    ), got


def test_a_malformed_security_context_cannot_hide_a_field() -> None:
    malformed = {"name": "c", "image": "x", "securityContext": ["privileged"]}
    got = reason(manifest("Pod", {"containers": [malformed]}))
    assert got == "workload[0].spec.containers[0].securityContext: must be an object"


RESTRICTED_CONTAINER = container(
    allowPrivilegeEscalation=False,
    runAsNonRoot=True,
    capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    seccompProfile={"type": "RuntimeDefault"},
)


def test_a_hardened_pod_passes_restricted() -> None:
    rules = at_level(PodSecurityLevel.RESTRICTED)
    spec = {"containers": [RESTRICTED_CONTAINER],
            "volumes": [{"name": "v", "configMap": {"name": "c"}}]}  # fmt: skip
    assert reason(manifest("Job", spec), rules, project_name="p1", workspace_name="w") == ""
    # Pod-level settings cover containers that leave them unset.
    pod_level = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost",
                                                                    "localhostProfile": "x"}},
        "containers": [container(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]})],
    }  # fmt: skip
    assert reason(manifest("Pod", pod_level), rules, project_name="p1", workspace_name="w") == ""


RESTRICTED_VIOLATIONS: list[tuple[str, dict[str, Any], str, str]] = [
    ("escalation", {"allowPrivilegeEscalation": None},
     "containers[0].securityContext.allowPrivilegeEscalation", "Privilege Escalation"),
    ("root", {"runAsNonRoot": False},
     "containers[0].securityContext.runAsNonRoot", "Running as Non-root"),
    ("uid-0", {"runAsUser": 0}, "containers[0].securityContext.runAsUser",
     "Running as Non-root user"),
    ("no-seccomp", {"seccompProfile": None},
     "containers[0].securityContext.seccompProfile.type", "Seccomp"),
    ("no-drop", {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
     "containers[0].securityContext.capabilities.drop", "Capabilities"),
    ("add-chown", {"capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}},
     "containers[0].securityContext.capabilities.add[0]", "Capabilities"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "control"),
    [case[1:] for case in RESTRICTED_VIOLATIONS],
    ids=[case[0] for case in RESTRICTED_VIOLATIONS],
)
def test_restricted_refuses_each_control(change: dict[str, Any], field: str, control: str) -> None:
    security = {**RESTRICTED_CONTAINER["securityContext"], **change}
    context = {k: v for k, v in security.items() if v is not None}
    spec = {"containers": [{"name": "c", "image": "x", "securityContext": context}]}
    rules = at_level(PodSecurityLevel.RESTRICTED)
    got = reason(manifest("StatefulSet", spec), rules, project_name="p1", workspace_name="w")
    assert got.startswith(f"workload[0].spec.template.spec.{field}: "), got
    assert '"restricted"' in got, got
    assert f"({control})" in got, got
    # The same pod is fine for a baseline project.
    assert reason(manifest("StatefulSet", spec), project_name="p2", workspace_name="w") == ""


def test_restricted_refuses_a_volume_type_outside_its_list() -> None:
    rules = at_level(PodSecurityLevel.RESTRICTED)
    spec = {"containers": [RESTRICTED_CONTAINER],
            "volumes": [{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}]}  # fmt: skip
    got = reason(manifest("Pod", spec), rules, project_name="p1", workspace_name="w")
    assert got.startswith(
        'workload[0].spec.volumes[0].nfs: forbidden by Pod Security Standard "restricted"'
    ), got


def test_every_violation_is_counted_in_the_reason() -> None:
    spec = {"hostNetwork": True, "hostPID": True,
            "containers": [container(privileged=True)]}  # fmt: skip
    got = reason(manifest("Pod", spec))
    assert got.startswith("workload[0].spec.hostNetwork: "), got
    assert got.endswith(
        "also refused: workload[0].spec.hostPID, "
        "workload[0].spec.containers[0].securityContext.privileged"
    ), got


def test_the_default_level_is_configurable() -> None:
    admission = AdmissionRules(default=ProjectAdmission(pod_security=PodSecurityLevel.RESTRICTED))
    rules = dataclasses.replace(RULES, admission=admission)
    got = reason(manifest("Pod", {"containers": [container()]}), rules)
    assert '"restricted"' in got
