"""Admission over one request: its namespace, then every manifest — the Pod Security Standard
of its project on every pod template of every kind, gsch's own rules, Secrets — and, once all
of that holds, its Secrets sealed. The intake calls `admit`; a binder or an agent calls
`violations` again before applying, since it cannot know who wrote the event it acts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gsch.model.admission.namespaces import namespace_of, namespace_problem
from gsch.model.admission.pod_security import PodTemplate, pod_security_violations
from gsch.model.admission.rules import AdmissionRules, Rule, Violation, forbidden
from gsch.model.admission.secrets import is_secret, seal_secrets, secret_violations
from gsch.model.admission.workloads import pod_violations, service_violations
from gsch.model.workload import pod_spec, pod_spec_path

MAX_LISTED = 5  # further violations named in a rejection's reason


@dataclass(frozen=True)
class Scope:
    """Where a request asks to run: the fields that decide its namespace and its rules."""

    project: str | None
    workspace: str | None  # the workspace's part of `<project>-<workspace>`
    namespace: str | None

    @classmethod
    def of(
        cls,
        project: str | None,
        workspace_name: str | None,
        workspace_uid: str | None,
        namespace: str | None,
        rules: AdmissionRules,
    ) -> Scope:
        """The scope of a request's fields under the installation's namespace rule."""
        by_uid = rules.workspace_namespace == "uid"
        return cls(project, workspace_uid if by_uid else workspace_name, namespace)

    @property
    def target(self) -> str:
        return namespace_of(self.project, self.workspace, self.namespace)

    def describe(self) -> str:
        if self.namespace:
            return f"{self.target!r}"
        if self.project:
            return (
                f"{self.target!r} (from project {self.project!r} and workspace {self.workspace!r})"
            )
        return f"{self.target!r} (no project and no namespace named)"


def pod_template(document: dict[str, Any], where: str) -> PodTemplate | None:
    path = pod_spec_path(str(document.get("kind")))
    spec = pod_spec(document)
    if path is None or spec is None:
        return None
    # The pod's metadata sits beside its spec: `metadata` of a Pod, `spec.template.metadata`
    # of a controller.
    holder: Any = document
    for key in path[:-1]:
        holder = holder.get(key) if isinstance(holder, dict) else None
    metadata = holder.get("metadata") if isinstance(holder, dict) else None
    return PodTemplate(
        spec=spec,
        metadata=metadata if isinstance(metadata, dict) else {},
        path=".".join((where, *path)),
        metadata_path=".".join((where, *path[:-1], "metadata")),
    )


def _document_violations(
    document: dict[str, Any], where: str, scope: Scope, rules: AdmissionRules
) -> list[Violation]:
    project = rules.project(scope.project)
    found: list[Violation] = []
    metadata = document.get("metadata")
    own = metadata.get("namespace") if isinstance(metadata, dict) else None
    if own is not None and own != scope.target:
        why = f"{own!r} is not the request's namespace {scope.target!r}"
        found.append(Violation(f"{where}.metadata.namespace", forbidden(Rule.NAMESPACE, why)))
    template = pod_template(document, where)
    if template is not None:
        found += pod_security_violations(template, project.pod_security)
        found += pod_violations(template, project, rules)
    found += service_violations(document, where, project)
    if is_secret(document):
        found += secret_violations(document, where, rules.secret_key)
    return found


def violations(
    documents: tuple[dict[str, Any], ...], scope: Scope, rules: AdmissionRules
) -> list[Violation]:
    """Everything the rules forbid in a request, in the order a reader meets it."""
    found: list[Violation] = []
    problem = namespace_problem(scope.target, scope.project, scope.workspace, rules)
    if problem is not None:
        found.append(Violation("namespace", f"{scope.describe()} is {problem}"))
    for index, document in enumerate(documents):
        if isinstance(document, dict):
            found += _document_violations(document, f"workload[{index}]", scope, rules)
    return found


def summary(found: list[Violation]) -> Violation:
    """One violation to report, with the fields of the others named after it."""
    first, rest = found[0], found[1:]
    if not rest:
        return first
    named = ", ".join(v.field for v in rest[:MAX_LISTED])
    more = f" and {len(rest) - MAX_LISTED} more" if len(rest) > MAX_LISTED else ""
    return Violation(first.field, f"{first.problem}; also refused: {named}{more}")


class AdmissionRefused(Exception):
    def __init__(self, violation: Violation) -> None:
        super().__init__(f"{violation.field}: {violation.problem}")
        self.violation = violation


def admit(
    documents: tuple[dict[str, Any], ...], scope: Scope, rules: AdmissionRules
) -> tuple[dict[str, Any], ...]:
    """The documents as they may be stored (Secrets sealed); raises `AdmissionRefused`."""
    found = violations(documents, scope, rules)
    if found:
        raise AdmissionRefused(summary(found))
    return seal_secrets(documents, scope.target, rules.secret_key)
