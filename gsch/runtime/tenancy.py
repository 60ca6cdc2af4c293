"""Projects and workspaces declared as data, live in a process: follow them in the log, and
record new declarations (the API's `PUT /v1/projects/{name}`, `gsch declare FILE`).

A process that plans (workers, the API's dry run) starts a `TenancyFeed` and hands every
change to its listeners, which rebuild their rules (`gsch.scheduler.rules`); nothing restarts.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from collections.abc import Callable

import msgspec

from gsch.eventstore.store import EventStore, StoredEvent, Write
from gsch.eventstore.subjects import ALL_TENANCY_EVENTS, TenancyKey
from gsch.model.documents import DocumentError, load_documents
from gsch.model.events import (
    Event,
    ProjectDeclared,
    ProjectRemoved,
    ProjectSpec,
    WorkspaceDeclared,
    WorkspaceRemoved,
    WorkspaceSpec,
)
from gsch.model.tenancy import DeclarationError, Tenancy, check_project, check_workspace
from gsch.runtime.config import Config

log = logging.getLogger(__name__)

Listener = Callable[[Tenancy], None]


class TenancyFeed:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.tenancy = Tenancy()
        self._listeners: list[Listener] = []
        self._follower = store.follow(ALL_TENANCY_EVENTS, self._apply)

    def listen(self, listener: Listener) -> None:
        """Call `listener` now and after every change."""
        self._listeners.append(listener)
        listener(self.tenancy)

    def _apply(self, stored: StoredEvent) -> None:
        if not self.tenancy.apply(stored.event, stored.seq):
            return
        log.info("projects or workspaces changed", extra={"seq": stored.seq})
        for listener in self._listeners:
            listener(self.tenancy)

    async def start(self) -> Tenancy:
        """Start following; return once every declaration that existed is folded."""
        newest = await self.store.last(ALL_TENANCY_EVENTS)
        await self._follower.start()
        if newest is not None:
            await self.wait_for(newest.seq)
        return self.tenancy

    async def wait_for(self, seq: int, timeout: float = 30.0) -> bool:
        """Whether the feed reached `seq` (its own last event; the log may be further on)."""
        deadline = time.monotonic() + timeout
        newest = await self.store.last(ALL_TENANCY_EVENTS)
        target = min(seq, newest.seq if newest is not None else 0)
        while self._follower.last_seq < target:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        await self._follower.stop()


async def declare_project(
    store: EventStore,
    tenancy: Tenancy,
    configured: set[str],
    name: str,
    spec: ProjectSpec | None,
    by: str,
) -> int:
    """Record project `name` (`spec`), or its removal (None). Raises `DeclarationError`."""
    event: Event
    if spec is None:
        if name not in tenancy.projects:
            raise DeclarationError("name", f"project {name!r} is not declared")
        event = ProjectRemoved(at=time.time(), name=name, by=by)
    else:
        check_project(name, spec, tenancy, configured)
        event = ProjectDeclared(at=time.time(), name=name, spec=spec, by=by)
    return (await store.append(Write(TenancyKey("project", name), (event,))))[0]


async def declare_workspace(
    store: EventStore, tenancy: Tenancy, name: str, spec: WorkspaceSpec | None, by: str
) -> int:
    """Record workspace `name` (`spec`), or its removal (None). Raises `DeclarationError`."""
    event: Event
    if spec is None:
        if name not in tenancy.workspaces:
            raise DeclarationError("name", f"workspace {name!r} is not declared")
        users = sorted(p for p, s in tenancy.projects.items() if s.workspace == name)
        if users:
            raise DeclarationError("name", f"projects {', '.join(users[:5])} belong to it")
        event = WorkspaceRemoved(at=time.time(), name=name, by=by)
    else:
        check_workspace(name, spec, tenancy)
        event = WorkspaceDeclared(at=time.time(), name=name, spec=spec, by=by)
    return (await store.append(Write(TenancyKey("workspace", name), (event,))))[0]


class _Declarations(msgspec.Struct, forbid_unknown_fields=True):
    workspaces: dict[str, WorkspaceSpec | None] = msgspec.field(default_factory=dict)
    projects: dict[str, ProjectSpec | None] = msgspec.field(default_factory=dict)


async def declare_from_file(store: EventStore, config: Config, text: bytes) -> list[str]:
    """`gsch declare FILE`: record a file's declarations straight in the log (the bus path;
    the API's is `PUT /v1/projects/{name}`). Workspaces first, so projects can name them.
    Raises `DeclarationError` at the first refused one (those before it are recorded)."""
    try:
        documents = load_documents(text)
        wanted = msgspec.convert(documents[0] if len(documents) == 1 else None, _Declarations)
    except (DocumentError, msgspec.ValidationError) as exc:
        raise DeclarationError("file", f"not a declarations document: {exc}") from None
    tenancy = Tenancy()

    async def catch_up() -> None:  # each declaration is checked against the ones before it
        for stored in await store.read(ALL_TENANCY_EVENTS, after=tenancy.last_seq):
            tenancy.apply(stored.event, stored.seq)

    await catch_up()
    by = f"cli:{getpass.getuser()}"
    aliases = config.gedge.cluster_aliases
    lines = []
    for name, workspace in wanted.workspaces.items():
        if workspace is not None:
            clusters = tuple(aliases.get(c, c) for c in workspace.clusters)
            workspace = msgspec.structs.replace(workspace, clusters=clusters)
        seq = await declare_workspace(store, tenancy, name, workspace, by)
        await catch_up()
        lines.append(f"workspace {name}: {'removed' if workspace is None else 'declared'} ({seq})")
    for name, project in wanted.projects.items():
        if project is not None:
            clusters = tuple(aliases.get(c, c) for c in project.clusters)
            project = msgspec.structs.replace(project, clusters=clusters)
        seq = await declare_project(store, tenancy, set(config.projects), name, project, by)
        await catch_up()
        lines.append(f"project {name}: {'removed' if project is None else 'declared'} ({seq})")
    return lines
