"""The admission rules a configuration sets (`[admission]` and `[projects.<name>]`), checked
once at start so a typo fails the process instead of admitting or refusing the wrong things.
Every process that admits or applies workloads builds them here: workers, the API's dry run,
binders and agents."""

from __future__ import annotations

from pathlib import Path

from gsch.model.admission.namespaces import namespace_problem
from gsch.model.admission.rules import (
    EXEMPTIBLE,
    AdmissionRules,
    PodSecurityLevel,
    ProjectAdmission,
    Rule,
)
from gsch.model.admission.secrets import derive_key
from gsch.runtime.config import Config, ConfigError, ProjectConfig


def _project(name: str, project: ProjectConfig, default: PodSecurityLevel) -> ProjectAdmission:
    allow = set()
    for rule in project.allow:
        if rule not in {r.value for r in EXEMPTIBLE}:
            known = ", ".join(sorted(r.value for r in EXEMPTIBLE))
            raise ConfigError(f"projects.{name}.allow: {rule!r} is not a rule a project may skip "
                              f"({known})")  # fmt: skip
        allow.add(Rule(rule))
    return ProjectAdmission(
        pod_security=PodSecurityLevel(project.pod_security) if project.pod_security else default,
        namespaces=frozenset(project.namespaces),
        service_accounts=(
            frozenset(project.service_accounts) if project.service_accounts is not None else None
        ),
        allow=frozenset(allow),
    )


def _secret_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return derive_key(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"admission.secret_key_file: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"admission.secret_key_file {path}: {exc}") from exc


def admission_rules(config: Config) -> AdmissionRules:
    settings = config.admission
    default = PodSecurityLevel(settings.pod_security)
    rules = AdmissionRules(
        default=ProjectAdmission(pod_security=default),
        projects={name: _project(name, p, default) for name, p in config.projects.items()},
        shared_namespaces=frozenset(settings.shared_namespaces),
        denied_namespaces=frozenset(settings.denied_namespaces),
        gsch_namespace=settings.gsch_namespace,
        denied_service_accounts=frozenset(settings.denied_service_accounts),
        secret_key=_secret_key(settings.secret_key_file),
        workspace_namespace=settings.workspace_namespace,
    )
    # A namespace a project lists, or a shared one, must itself be one a request could use.
    for name, project in rules.projects.items():
        for namespace in sorted(project.namespaces):
            problem = namespace_problem(namespace, name, None, rules)
            if problem is not None:
                raise ConfigError(f"projects.{name}.namespaces: {namespace!r} is {problem}")
    for namespace in sorted(rules.shared_namespaces):
        problem = namespace_problem(namespace, None, None, rules)
        if problem is not None:
            raise ConfigError(f"admission.shared_namespaces: {namespace!r} is {problem}")
    return rules
