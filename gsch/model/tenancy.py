"""Projects and workspaces declared as data: what a declaration may say, and the fold of the
declarations in the log into the current set. No I/O.

GEdge creates projects and workspaces at run time (its platform-info API); gsch takes them as
events (`ProjectDeclared`, `WorkspaceDeclared`, and their removals, on
`gsch.events.tenancy.<kind>.<name>`), so a new project places requests on its clusters
without a restart. The configuration file still works and wins: a project it lists cannot be
declared as data (the file is the reviewed source of truth for it).

A project's clusters are its own `clusters`/`selectors`; a project naming a workspace and no
clusters of its own has the workspace's clusters (GEdge: project clusters ⊆ workspace
clusters, checked when both are given).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from gsch.model.events import (
    AnyEvent,
    ProjectDeclared,
    ProjectRemoved,
    ProjectSpec,
    WorkspaceDeclared,
    WorkspaceRemoved,
    WorkspaceSpec,
)
from gsch.model.limits import shown
from gsch.model.request import NAME_PATTERN, SELECTOR_PATTERN

# Names become part of namespaces (`<project>-<workspace>`): DNS labels.
TENANT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
MAX_ENTRIES = 256  # clusters or selectors of one declaration


class DeclarationError(ValueError):
    """A declaration gsch will not record; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass
class Tenancy:
    """The projects and workspaces the log declares, as of `last_seq`."""

    projects: dict[str, ProjectSpec] = field(default_factory=dict)
    workspaces: dict[str, WorkspaceSpec] = field(default_factory=dict)
    last_seq: int = 0

    def apply(self, event: AnyEvent, seq: int) -> bool:
        """Fold one event; True when it changed what is declared."""
        self.last_seq = max(self.last_seq, seq)
        match event:
            case ProjectDeclared(name=name, spec=spec):
                changed = self.projects.get(name) != spec
                self.projects[name] = spec
            case ProjectRemoved(name=name):
                changed = self.projects.pop(name, None) is not None
            case WorkspaceDeclared(name=name, spec=spec):
                changed = self.workspaces.get(name) != spec
                self.workspaces[name] = spec
            case WorkspaceRemoved(name=name):
                changed = self.workspaces.pop(name, None) is not None
            case _:
                changed = False
        return changed

    def project_clusters(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(cluster names, selectors) a declared project may use."""
        spec = self.projects[name]
        if spec.clusters or spec.selectors or spec.workspace is None:
            return spec.clusters, spec.selectors
        workspace = self.workspaces.get(spec.workspace)
        return (workspace.clusters if workspace is not None else ()), ()

    def workspace_uids(self) -> Mapping[str, str]:
        return {name: w.uid for name, w in self.workspaces.items() if w.uid is not None}


def _check_name(kind: str, name: str) -> None:
    if not TENANT_NAME.match(name):
        raise DeclarationError("name", f"{kind} name {shown(name)} must be 1-63 of a-z, 0-9, '-'")


def _check_clusters(clusters: Collection[str], where: str) -> None:
    if len(clusters) > MAX_ENTRIES:
        raise DeclarationError(where, f"lists {len(clusters)} clusters, at most {MAX_ENTRIES}")
    for name in clusters:
        if not NAME_PATTERN.match(name):
            raise DeclarationError(where, f"{shown(name)} is not a valid cluster name")


def check_project(
    name: str, spec: ProjectSpec, tenancy: Tenancy, configured: Collection[str]
) -> None:
    """Raise `DeclarationError` unless `spec` may be recorded for project `name`."""
    _check_name("project", name)
    if name in configured:
        raise DeclarationError(
            "name", f"project {name!r} is configured in the file ([projects.{name}]), which wins"
        )
    _check_clusters(spec.clusters, "clusters")
    if len(spec.selectors) > MAX_ENTRIES:
        raise DeclarationError("selectors", f"at most {MAX_ENTRIES}")
    for selector in spec.selectors:
        if not SELECTOR_PATTERN.match(selector):
            raise DeclarationError("selectors", f"{shown(selector)} is not key=value[&…]")
    if spec.workspace is None:
        return
    _check_name("workspace", spec.workspace)
    workspace = tenancy.workspaces.get(spec.workspace)
    if workspace is None:
        raise DeclarationError("workspace", f"workspace {spec.workspace!r} is not declared")
    outside = sorted(set(spec.clusters) - set(workspace.clusters)) if workspace.clusters else []
    if outside:
        raise DeclarationError(
            "clusters",
            f"{', '.join(outside[:5])} not among workspace {spec.workspace!r}'s clusters",
        )


def check_workspace(name: str, spec: WorkspaceSpec, tenancy: Tenancy) -> None:
    """Raise `DeclarationError` unless `spec` may be recorded for workspace `name`."""
    _check_name("workspace", name)
    _check_clusters(spec.clusters, "clusters")
    if spec.uid is not None:
        if not TENANT_NAME.match(spec.uid):
            raise DeclarationError("uid", f"{shown(spec.uid)} must be 1-63 of a-z, 0-9 and '-'")
        taken = [w for w, s in tenancy.workspaces.items() if s.uid == spec.uid and w != name]
        if taken:
            raise DeclarationError("uid", f"{spec.uid!r} is workspace {taken[0]!r}'s uid")
    if spec.user_name is not None and not 0 < len(spec.user_name) <= 253:
        raise DeclarationError("user_name", "must be 1-253 characters")
