"""Projects and workspaces as data: what a declaration may say, the fold, and what planning
makes of it next to the configuration file."""

from __future__ import annotations

import pytest

from gsch.model.events import (
    ProjectDeclared,
    ProjectRemoved,
    ProjectSpec,
    WorkspaceDeclared,
    WorkspaceSpec,
)
from gsch.model.tenancy import DeclarationError, Tenancy, check_project, check_workspace
from gsch.runtime.config import load_config
from gsch.scheduler.rules import planner_rules


def declared() -> Tenancy:
    tenancy = Tenancy()
    tenancy.apply(WorkspaceDeclared(at=1, name="w1", spec=WorkspaceSpec(uid="u-1",
                  clusters=("c1", "c2"))), 1)  # fmt: skip
    tenancy.apply(ProjectDeclared(at=2, name="p1", spec=ProjectSpec(workspace="w1")), 2)
    tenancy.apply(ProjectDeclared(at=3, name="p2", spec=ProjectSpec(clusters=("c2",))), 3)
    return tenancy


def test_the_fold_and_a_projects_clusters() -> None:
    tenancy = declared()
    assert tenancy.project_clusters("p1") == (("c1", "c2"), ())  # its workspace's
    assert tenancy.project_clusters("p2") == (("c2",), ())
    assert tenancy.workspace_uids() == {"w1": "u-1"}
    assert tenancy.apply(ProjectRemoved(at=4, name="p2"), 4)
    assert not tenancy.apply(ProjectRemoved(at=5, name="p2"), 5)  # nothing left to remove
    assert set(tenancy.projects) == {"p1"}
    assert tenancy.last_seq == 5


def test_declared_projects_plan_beside_the_configured_ones_and_the_file_wins() -> None:
    config = load_config(None, {"projects": {"p2": {"clusters": ["c9"]}}}, environ={})
    projects = planner_rules(config, declared()).projects
    assert projects["p1"].allows("c1", {})
    assert not projects["p1"].allows("c9", {})
    assert projects["p2"].allows("c9", {})
    assert not projects["p2"].allows("c2", {})


@pytest.mark.parametrize(
    ("name", "spec", "field"),
    [
        ("P1", ProjectSpec(), "name"),
        ("cfg", ProjectSpec(), "name"),  # configured in the file
        ("p3", ProjectSpec(clusters=("mec(ilsan)",)), "clusters"),
        ("p3", ProjectSpec(selectors=("tier",)), "selectors"),
        ("p3", ProjectSpec(workspace="w9"), "workspace"),
        ("p3", ProjectSpec(workspace="w1", clusters=("c3",)), "clusters"),  # not w1's
    ],
)
def test_project_declarations_that_are_refused(name: str, spec: ProjectSpec, field: str) -> None:
    with pytest.raises(DeclarationError) as info:
        check_project(name, spec, declared(), {"cfg"})
    assert info.value.field == field


def test_workspace_declarations_that_are_refused() -> None:
    with pytest.raises(DeclarationError, match="is workspace 'w1'"):
        check_workspace("w2", WorkspaceSpec(uid="u-1"), declared())
    with pytest.raises(DeclarationError, match="a-z"):
        check_workspace("w2", WorkspaceSpec(uid="UID"), declared())
    check_workspace("w1", WorkspaceSpec(uid="u-1"), declared())  # its own uid again
