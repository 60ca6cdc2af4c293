"""What a scheduling process takes from its configuration: the intake's rules and the
planner's rules, and `admit`, the intake's decode as every process applies it (workers, the
dry run and the API answer alike)."""

from __future__ import annotations

from dataclasses import replace

from gsch.model.gedge import GedgeCompat
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.limits import CountLimits
from gsch.model.request import SELECTOR_PATTERN, Request
from gsch.model.tenancy import Tenancy
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules, ProjectClusters
from gsch.runtime.admission import admission_rules
from gsch.runtime.config import Config, ConfigError


def intake_rules(config: Config) -> IntakeRules:
    return IntakeRules(
        max_request_bytes=config.intake.max_request_bytes,
        allowed_kinds=frozenset(config.intake.allowed_kinds),
        admission=admission_rules(config),
        limits=CountLimits(
            max_levels=config.intake.max_levels,
            max_clusters_per_level=config.intake.max_clusters_per_level,
            max_clusters=config.intake.max_clusters,
            max_documents=config.intake.max_documents,
        ),
        compat=GedgeCompat(
            cluster_aliases=dict(config.gedge.cluster_aliases),
            resource_aliases=dict(config.gedge.resource_aliases),
            scheduler_names=dict(config.gedge.scheduler_names),
        ),
        callback_hosts=frozenset(config.callbacks.allowed_hosts),
    )


def planner_rules(config: Config, tenancy: Tenancy | None = None) -> PlannerRules:
    """The rules every plan of this process follows (workers and the dry run alike): the
    configured projects, and those declared as data (`tenancy`; the file wins a name)."""
    for name, project in config.projects.items():
        for selector in project.selectors:
            if not SELECTOR_PATTERN.match(selector):
                raise ConfigError(f"projects.{name}.selectors: {selector!r} is not key=value[&…]")
    projects = {
        name: ProjectClusters.of(project.clusters, project.selectors)
        for name, project in config.projects.items()
    }
    declared = tenancy.projects if tenancy is not None else {}
    for name in declared.keys() - projects.keys():
        assert tenancy is not None
        clusters, selectors = tenancy.project_clusters(name)
        projects[name] = ProjectClusters.of(list(clusters), list(selectors))
    return PlannerRules(max_latency_age=config.planner.max_latency_age, projects=projects)


def with_tenancy(rules: IntakeRules, tenancy: Tenancy) -> IntakeRules:
    """The intake's rules with what declared workspaces add (their uids)."""
    return replace(rules, workspace_uids=dict(tenancy.workspace_uids()))


def admit(data: bytes, rules: IntakeRules, fallback_id: str) -> Request | Rejection:
    """Decode a request as a worker takes it: any accepted form, then a policy this version
    can place. The dry run calls exactly this, so it answers what a worker would."""
    decoded = decode_request(data, rules, fallback_id)
    if isinstance(decoded, Request) and decoded.policy not in PROFILES:
        available = ", ".join(p.value for p in PROFILES)
        return Rejection(
            decoded.request_id,
            "policy",
            f"{decoded.policy} is recognised but not available yet (available: {available})",
            decoded.form,
        )
    return decoded
