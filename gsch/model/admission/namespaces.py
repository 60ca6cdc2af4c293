"""Which namespace a request's objects land in, and whether the request may use it.

The namespace is the request's `namespace` when it names one, else `<project>-<workspace>`
(`<project>` without a workspace), else `default`. A request naming a project may use the
namespace of its own workspace and those its project lists (`[projects.<name>] namespaces`);
a request without a project only the installation's shared namespaces
(`admission.shared_namespaces`, `["default"]` unless configured). Never, whatever is
configured: `kube-*` (the cluster's own), gsch's own namespace, the deny list, and a namespace
that belongs to another configured project — `a-b-c` is project `a-b`'s (workspace `c`) when
`a-b` is configured, so project `a` cannot reach it as workspace `b-c`.
"""

from __future__ import annotations

import re

from gsch.model.admission.rules import AdmissionRules, Rule, forbidden

# Namespaces are DNS-1123 labels.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


def namespace_of(project: str | None, workspace: str | None, namespace: str | None) -> str:
    """The namespace a request's objects are applied in (the binder uses this too)."""
    if namespace:
        return namespace
    if project:
        return f"{project}-{workspace}" if workspace else project
    return "default"


def _owner(namespace: str, rules: AdmissionRules) -> str | None:
    """The configured project a namespace belongs to: one that lists it, else the one with
    the longest name that is a `<project>-` prefix of it."""
    listed = [name for name, project in rules.projects.items() if namespace in project.namespaces]
    if listed:
        return min(listed)
    prefixed = [name for name in rules.projects if namespace.startswith(f"{name}-")]
    if namespace in rules.projects:
        prefixed.append(namespace)
    return max(prefixed, key=len) if prefixed else None


def namespace_problem(
    namespace: str, project: str | None, workspace: str | None, rules: AdmissionRules
) -> str | None:
    """Why the request may not use `namespace` ("forbidden by ... rule ..."); None if it may."""

    def refused(why: str) -> str:
        return forbidden(Rule.NAMESPACE, why)

    if not _LABEL.match(namespace):
        return refused("not a Kubernetes namespace name: 1-63 of a-z, 0-9 and '-'")
    if namespace.startswith("kube-"):
        return refused("kube-* namespaces belong to the cluster itself")
    if namespace == rules.gsch_namespace:
        return refused("gsch's own namespace")
    if namespace in rules.denied_namespaces:
        return refused("on the installation's deny list")
    if project is None:
        if namespace in rules.shared_namespaces:
            return None
        shared = ", ".join(sorted(rules.shared_namespaces)) or "none"
        return refused(f"a request without a project may use only the shared namespaces: {shared}")
    owner = _owner(namespace, rules)
    if owner is not None and owner != project:
        return refused(f"it belongs to project {owner!r}")
    own = namespace_of(project, workspace, None)
    if namespace == own or namespace in rules.project(project).namespaces:
        return None
    return refused(f"project {project!r} owns {own!r} and the namespaces it lists, not this one")
