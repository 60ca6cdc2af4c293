"""Turn a request's workload into the objects gsch applies to one member cluster (no I/O).

- Namespace: the request's own namespace when it names one, else `<project>-<workspace>`
  (just `<project>` without a workspace), else `default`; intake admitted it
  (`gsch.model.admission.namespaces`).
- Every object carries the request id label (`gsch.model.ids.REQUEST_ID_KEY`; pods through
  their template too, so inventory recognises gsch's pods and does not count them twice) and
  the annotations `REQUEST_ID_KEY`, `gsch.io/policy` and `gsch.io/node`.
- Pinning: the pod spec (`spec` of a Pod, `spec.template.spec` of a controller,
  `spec.jobTemplate.spec.template.spec` of a CronJob) gets
  `nodeSelector: {kubernetes.io/hostname: <node>}`. Not `nodeName`: that bypasses
  kube-scheduler, so taints, resource fit and preemption would go unchecked and a pod that
  does not fit fails (OutOfcpu) instead of waiting. A node selector is ANDed with the user's
  own selectors, which the policy already matched, so it merges without rewriting affinity.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from gsch.kube.inventory import HOSTNAME_LABEL
from gsch.model.admission.namespaces import namespace_of
from gsch.model.ids import REQUEST_ID_KEY
from gsch.model.request import Request
from gsch.model.workload import pod_spec, pod_template

POLICY_ANNOTATION = "gsch.io/policy"
NODE_ANNOTATION = "gsch.io/node"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")


def label_value(request_id: str) -> str:
    """The request id as a label value (at most 63 characters, no colons); ids that are not
    valid label values are hashed (the annotation keeps the id itself)."""
    if _LABEL_VALUE.match(request_id):
        return request_id
    return "h-" + hashlib.sha256(request_id.encode()).hexdigest()[:40]


def target_namespace(request: Request) -> str:
    return namespace_of(request.project_name, request.workspace_name, request.namespace)


def _mark(metadata: dict[str, Any], request_id: str) -> None:
    labels = metadata.get("labels")
    metadata["labels"] = {**(labels if isinstance(labels, dict) else {}),
                          REQUEST_ID_KEY: label_value(request_id)}  # fmt: skip


def prepare(request_id: str, request: Request, hostname: str, node: str) -> list[dict[str, Any]]:
    """The request's documents, ready to apply on the node whose hostname label is given."""
    namespace = target_namespace(request)
    prepared = []
    for original in request.workload:
        document = copy.deepcopy(original)
        metadata = document.setdefault("metadata", {})
        metadata["namespace"] = namespace
        _mark(metadata, request_id)
        annotations = metadata.get("annotations")
        metadata["annotations"] = {
            **(annotations if isinstance(annotations, dict) else {}),
            REQUEST_ID_KEY: request_id,
            POLICY_ANNOTATION: str(request.policy),
            NODE_ANNOTATION: node,
        }
        template = pod_template(document)
        if template is not None:
            inner = template.get("metadata")
            template["metadata"] = inner = inner if isinstance(inner, dict) else {}
            _mark(inner, request_id)
        spec = pod_spec(document)
        if spec is not None:
            selector = spec.get("nodeSelector")
            spec["nodeSelector"] = {**(selector if isinstance(selector, dict) else {}),
                                    HOSTNAME_LABEL: hostname}  # fmt: skip
        prepared.append(document)
    return prepared


def owned_by(obj: dict[str, Any], request_id: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(REQUEST_ID_KEY) == label_value(request_id))
