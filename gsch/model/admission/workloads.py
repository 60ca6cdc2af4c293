"""gsch's own admission rules on pods and services, beyond the Pod Security Standards: the
ways a tenant could step around the scheduler or out of its namespace without privileges.

- `node-name`: `spec.nodeName` binds a pod to a node without kube-scheduler (no fit, taint or
  preemption checks) and without gsch's placement;
- `tolerate-all`: a toleration with `operator: Exists` and no key tolerates every taint,
  control-plane and dedicated nodes included;
- `service-account`: a pod runs as a service account of its own namespace; a name that is not
  one (e.g. `system:serviceaccount:kube-system:...`), one on the installation's deny list, or
  one outside the project's list is refused;
- `external-ips`: a Service's `externalIPs` intercept traffic to those addresses on every node
  (CVE-2020-8554).
`allow = [...]` in a project exempts it from `node-name`, `tolerate-all` and `external-ips`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from gsch.model.admission.pod_security import PodTemplate
from gsch.model.admission.rules import (
    AdmissionRules,
    ProjectAdmission,
    Rule,
    Violation,
    forbidden,
)

# A service account name is a DNS-1123 subdomain in the pod's own namespace.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def _node_name(template: PodTemplate) -> Iterator[Violation]:
    if template.spec.get("nodeName") not in (None, ""):
        why = "it bypasses kube-scheduler and gsch's placement"
        yield Violation(f"{template.path}.nodeName", forbidden(Rule.NODE_NAME, why))


def _tolerate_all(template: PodTemplate) -> Iterator[Violation]:
    tolerations = template.spec.get("tolerations")
    if tolerations is None:
        return
    if not isinstance(tolerations, list):
        yield Violation(f"{template.path}.tolerations", "must be a list")
        return
    for index, toleration in enumerate(tolerations):
        if not isinstance(toleration, dict):
            yield Violation(f"{template.path}.tolerations[{index}]", "must be an object")
        elif toleration.get("operator") == "Exists" and toleration.get("key") in (None, ""):
            why = "operator Exists without a key tolerates every taint"
            field = f"{template.path}.tolerations[{index}]"
            yield Violation(field, forbidden(Rule.TOLERATE_ALL, why))


def _service_account(
    template: PodTemplate, project: ProjectAdmission, rules: AdmissionRules
) -> Iterator[Violation]:
    # `serviceAccount` is the deprecated spelling Kubernetes still honours.
    for key in ("serviceAccountName", "serviceAccount"):
        name = template.spec.get(key)
        field = f"{template.path}.{key}"
        if name is None or name == "":
            continue
        if not isinstance(name, str) or not _SUBDOMAIN.match(name) or len(name) > 253:
            why = "not a service account name of the pod's own namespace"
            yield Violation(field, forbidden(Rule.SERVICE_ACCOUNT, why))
        elif name in rules.denied_service_accounts:
            why = f"{name!r} is on the installation's deny list"
            yield Violation(field, forbidden(Rule.SERVICE_ACCOUNT, why))
        elif (
            project.service_accounts is not None
            and name != "default"
            and name not in project.service_accounts
        ):
            allowed = ", ".join(sorted({"default", *project.service_accounts}))
            why = f"{name!r} is not one of the project's ({allowed})"
            yield Violation(field, forbidden(Rule.SERVICE_ACCOUNT, why))


def pod_violations(
    template: PodTemplate, project: ProjectAdmission, rules: AdmissionRules
) -> list[Violation]:
    found = list(_service_account(template, project, rules))
    if Rule.NODE_NAME not in project.allow:
        found += _node_name(template)
    if Rule.TOLERATE_ALL not in project.allow:
        found += _tolerate_all(template)
    return found


def service_violations(
    document: dict[str, Any], where: str, project: ProjectAdmission
) -> list[Violation]:
    if document.get("kind") != "Service" or Rule.EXTERNAL_IPS in project.allow:
        return []
    spec = document.get("spec")
    addresses = spec.get("externalIPs") if isinstance(spec, dict) else None
    if addresses in (None, []):
        return []
    why = "they intercept traffic to those addresses on every node (CVE-2020-8554)"
    return [Violation(f"{where}.spec.externalIPs", forbidden(Rule.EXTERNAL_IPS, why))]
