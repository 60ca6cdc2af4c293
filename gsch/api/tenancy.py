"""Projects and workspaces as data over HTTP: list them (configured and declared), declare
or remove one (write token). A declaration is an event in the log; every worker and API
process follows it and plans with it at once (`gsch.runtime.tenancy`)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import nats.errors
from aiohttp import web

from gsch.api.http import ApiError, json_response
from gsch.api.spec import MIN_SEQ, Operation, Param
from gsch.eventstore.store import EventStore
from gsch.model.events import ProjectSpec, WorkspaceSpec
from gsch.model.tenancy import DeclarationError
from gsch.runtime.config import Config
from gsch.runtime.tenancy import TenancyFeed, declare_project, declare_workspace


class ProjectView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    source: Literal["config", "declared"]
    clusters: tuple[str, ...]
    selectors: tuple[str, ...]
    workspace: str | None = None


class WorkspaceView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    uid: str | None
    user_name: str | None
    clusters: tuple[str, ...]


class Projects(msgspec.Struct, frozen=True, kw_only=True):
    projects: tuple[ProjectView, ...]
    sequence: int  # the last declaration the answer reflects


class Workspaces(msgspec.Struct, frozen=True, kw_only=True):
    workspaces: tuple[WorkspaceView, ...]
    sequence: int


class Declared(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # project | workspace
    name: str
    removed: bool
    event_sequence: int  # the declaration's event: min_seq for the reads that must see it
    sequence: int


class _ProjectBody(ProjectSpec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A declaration as sent: a field gsch does not know is refused, not dropped."""


class _WorkspaceBody(WorkspaceSpec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


_project_spec = msgspec.json.Decoder(_ProjectBody)
_workspace_spec = msgspec.json.Decoder(_WorkspaceBody)
_NAME = Param("name", {"type": "string", "maxLength": 63}, "project or workspace name", "path")


class TenancyRoutes:
    def __init__(self, store: EventStore, feed: TenancyFeed, config: Config) -> None:
        self._store = store
        self._feed = feed
        self._config = config

    def operations(self) -> list[Operation]:
        return [
            Operation("GET", "/v1/projects", self.projects, "Projects: configured and declared"
                      " as data", Projects, (MIN_SEQ,)),
            Operation("PUT", "/v1/projects/{name}", self.put_project, "Declare a project (its"
                      " clusters, its workspace)", Declared, (_NAME,), body=ProjectSpec,
                      writes=True),
            Operation("DELETE", "/v1/projects/{name}", self.delete_project, "Remove a declared"
                      " project", Declared, (_NAME,), writes=True, errors=(404,)),
            Operation("GET", "/v1/workspaces", self.workspaces, "Workspaces declared as data",
                      Workspaces, (MIN_SEQ,)),
            Operation("PUT", "/v1/workspaces/{name}", self.put_workspace, "Declare a workspace"
                      " (uid, owner, clusters)", Declared, (_NAME,), body=WorkspaceSpec,
                      writes=True),
            Operation("DELETE", "/v1/workspaces/{name}", self.delete_workspace, "Remove a"
                      " declared workspace", Declared, (_NAME,), writes=True, errors=(404,)),
        ]  # fmt: skip

    # --- reads -------------------------------------------------------------------------

    async def projects(self, request: web.Request) -> web.StreamResponse:
        await self._caught_up(request)
        tenancy = self._feed.tenancy
        views = [
            ProjectView(name=name, source="config", clusters=tuple(project.clusters),
                        selectors=tuple(project.selectors))
            for name, project in self._config.projects.items()
        ]  # fmt: skip
        for name, spec in tenancy.projects.items():
            if name in self._config.projects:
                continue
            clusters, selectors = tenancy.project_clusters(name)
            views.append(ProjectView(name=name, source="declared", clusters=clusters,
                                     selectors=selectors, workspace=spec.workspace))  # fmt: skip
        views.sort(key=lambda view: view.name)
        answer = Projects(projects=tuple(views), sequence=tenancy.last_seq)
        return json_response(answer, answer.sequence)

    async def workspaces(self, request: web.Request) -> web.StreamResponse:
        await self._caught_up(request)
        tenancy = self._feed.tenancy
        views = tuple(
            WorkspaceView(name=name, uid=spec.uid, user_name=spec.user_name,
                          clusters=spec.clusters)
            for name, spec in sorted(tenancy.workspaces.items())
        )  # fmt: skip
        answer = Workspaces(workspaces=views, sequence=tenancy.last_seq)
        return json_response(answer, answer.sequence)

    async def _caught_up(self, request: web.Request) -> None:
        wanted = request.query.get("min_seq")
        if wanted is not None and wanted.isdigit():
            await self._feed.wait_for(int(wanted), self._config.api.max_wait)

    # --- writes ------------------------------------------------------------------------

    async def put_project(self, request: web.Request) -> web.StreamResponse:
        body = _decode(_project_spec, await request.read())
        aliases = self._config.gedge.cluster_aliases  # GEdge's platform names its clusters
        spec = ProjectSpec(
            clusters=tuple(aliases.get(c, c) for c in body.clusters),
            selectors=body.selectors,
            workspace=body.workspace,
        )
        name = request.match_info["name"]
        configured = set(self._config.projects)
        return await self._declared("project", name, False, declare_project(
            self._store, self._feed.tenancy, configured, name, spec, _who(request)))  # fmt: skip

    async def delete_project(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return await self._declared("project", name, True, declare_project(
            self._store, self._feed.tenancy, set(), name, None, _who(request)))  # fmt: skip

    async def put_workspace(self, request: web.Request) -> web.StreamResponse:
        body = _decode(_workspace_spec, await request.read())
        aliases = self._config.gedge.cluster_aliases
        spec = WorkspaceSpec(
            uid=body.uid,
            user_name=body.user_name,
            clusters=tuple(aliases.get(c, c) for c in body.clusters),
        )
        name = request.match_info["name"]
        return await self._declared("workspace", name, False, declare_workspace(
            self._store, self._feed.tenancy, name, spec, _who(request)))  # fmt: skip

    async def delete_workspace(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        return await self._declared("workspace", name, True, declare_workspace(
            self._store, self._feed.tenancy, name, None, _who(request)))  # fmt: skip

    async def _declared(self, kind: str, name: str, removed: bool, append: Any) -> web.Response:
        try:
            seq = await append
        except DeclarationError as exc:
            status = 404 if removed and "is not declared" in exc.problem else 400
            raise ApiError(status, str(exc)) from None
        except (TimeoutError, nats.errors.Error) as exc:
            raise ApiError(503, f"the event log is unreachable: {exc!r}") from None
        # Answer once this process plans with it: the next request sees the declaration.
        await self._feed.wait_for(seq, self._config.api.max_wait)
        answer = Declared(kind=kind, name=name, removed=removed, event_sequence=seq, sequence=seq)
        return json_response(answer, seq)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"the body is not a valid declaration: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the body must be a JSON object: {exc}") from None


def _who(request: web.Request) -> str:
    return f"api:{request.remote or 'unknown'}"
