"""The admission settings of an installation and of each project, and what a check reports."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class PodSecurityLevel(enum.StrEnum):
    """Kubernetes Pod Security Standards, least to most restrictive."""

    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {
    PodSecurityLevel.PRIVILEGED: 0,
    PodSecurityLevel.BASELINE: 1,
    PodSecurityLevel.RESTRICTED: 2,
}


class Rule(enum.StrEnum):
    """gsch's own admission rules (beyond the Pod Security Standards). A project may be
    exempted from those in `EXEMPTIBLE` by naming them in its `allow` list."""

    NAMESPACE = "namespace"
    NODE_NAME = "node-name"
    TOLERATE_ALL = "tolerate-all"
    SERVICE_ACCOUNT = "service-account"
    EXTERNAL_IPS = "external-ips"
    SECRET = "secret"


EXEMPTIBLE = frozenset({Rule.NODE_NAME, Rule.TOLERATE_ALL, Rule.EXTERNAL_IPS})


def forbidden(rule: Rule, why: str) -> str:
    """The problem text of a violation of one of gsch's rules."""
    return f'forbidden by gsch admission rule "{rule}" ({why})'


@dataclass(frozen=True)
class Violation:
    """One field of one manifest that a rule forbids; `problem` names the rule."""

    field: str
    problem: str


@dataclass(frozen=True)
class ProjectAdmission:
    """What one project's requests may do. `namespaces` are namespaces it owns besides
    `<project>-<workspace>`; `service_accounts`, when set, are the only ones its pods may run
    as (besides `default`); `allow` exempts it from the named gsch rules."""

    pod_security: PodSecurityLevel = PodSecurityLevel.BASELINE
    namespaces: frozenset[str] = frozenset()
    service_accounts: frozenset[str] | None = None
    allow: frozenset[Rule] = frozenset()


@dataclass(frozen=True)
class AdmissionRules:
    """The installation's admission settings.

    `default` applies to requests of projects not configured and to requests without a
    project. A request without a project may only use `shared_namespaces`. `kube-*`,
    `gsch_namespace` and `denied_namespaces` are never used, whatever a project lists.
    `secret_key` (from `admission.secret_key_file`) lets a `Secret` through, sealed; without
    it a Secret is refused, since its data would be stored in plain text."""

    default: ProjectAdmission = ProjectAdmission()
    projects: Mapping[str, ProjectAdmission] = field(default_factory=dict)
    shared_namespaces: frozenset[str] = frozenset({"default"})
    denied_namespaces: frozenset[str] = frozenset()
    gsch_namespace: str = "gsch-system"
    denied_service_accounts: frozenset[str] = frozenset()
    secret_key: bytes | None = None
    # What names a workspace in `<project>-<workspace>`: its name (gsch), or its uid (GEdge,
    # whose namespaces are `<project>-<workspace_uid>`).
    workspace_namespace: str = "name"

    def project(self, name: str | None) -> ProjectAdmission:
        if name is None:
            return self.default
        return self.projects.get(name, self.default)


DEFAULT_ADMISSION = AdmissionRules()
