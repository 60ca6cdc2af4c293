"""Events written straight to the log, as the worker and the clusters would, for read-model tests.

Timestamps come from a fake clock, so two runs of a scenario write the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gsch.eventstore.store import EventStore, Write
from gsch.eventstore.subjects import cluster_subject, node_subject, parse_subject, request_subject
from gsch.model.events import (
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    Event,
    Explanation,
    LevelTrace,
    NodeDeclared,
    Placement,
    PlacementCommitted,
    RequestAccepted,
    RequestBound,
    RequestClaimed,
    RequestRejected,
    RequestRequeued,
    Taint,
    WorkloadFinished,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.projections.projector import Projector
from gsch.projections.schema import TABLES

GI = 2**30
SMALL = Resources(cpu_m=500, memory=GI, pods=1)
NOTHING = Resources()


class Log:
    """Appends events the way gsch's writers do: request events on the request's subject,
    placement and reservation as one atomic batch."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_700_000_000)

    def at(self) -> float:
        return float(next(self._clock))

    def _write(self, subject: str, event: Event) -> Write:
        key, _ = parse_subject(subject)
        return Write(key, (event,), msg_ids=(f"test-{next(self._ids)}",))

    async def append(self, subject: str, event: Event) -> int:
        (seq,) = await self.store.append(self._write(subject, event))
        return seq

    async def batch(self, *items: tuple[str, Event]) -> int:
        return (await self.store.append(*(self._write(s, e) for s, e in items)))[-1]

    async def accept(
        self,
        rid: str,
        *,
        policy: Policy = Policy.MOST_REQUESTED,
        mode: str = "default",
        project: str = "p1",
        fast: bool = False,
    ) -> int:
        request = Request(
            request_id=rid,
            policy=policy,
            mode=mode,
            levels=(("c1", "c2"),),
            user_name="u1",
            workspace_name="w1",
            project_name=project,
            fast=fast,
            demand=SMALL,
        )
        level = QueueLevel.FAST if fast else QueueLevel.BASE
        event = RequestAccepted(at=self.at(), request=request, intake_seq=1, level=level)
        return await self.append(request_subject(rid, "RequestAccepted"), event)

    async def reject(self, rid: str, reason: str, field: str) -> int:
        event = RequestRejected(at=self.at(), request_id=rid, reason=reason, field=field)
        return await self.append(request_subject(rid, "RequestRejected"), event)

    async def claim(self, rid: str, attempt: int = 1) -> int:
        event = RequestClaimed(at=self.at(), attempt=attempt, worker="w-1")
        return await self.append(request_subject(rid, "RequestClaimed"), event)

    async def commit(self, rid: str, cluster: str, node: str, attempt: int = 1) -> int:
        explanation = Explanation(
            levels=(LevelTrace(index=0, candidates=("c1", "c2"), scores={cluster: 80.0},
                               chosen=cluster),),
            summary=f"placed on {cluster}/{node}",
        )  # fmt: skip
        committed = PlacementCommitted(
            at=self.at(),
            attempt=attempt,
            placements=(Placement(cluster, node, SMALL),),
            level_index=0,
            explanation=explanation,
            worker="w-1",
        )
        reserved = CapacityReserved(
            at=committed.at, cluster=cluster, node=node, request_id=rid, attempt=attempt,
            amount=SMALL,
        )  # fmt: skip
        return await self.batch(
            (request_subject(rid, "PlacementCommitted"), committed),
            (node_subject(cluster, node, "CapacityReserved"), reserved),
        )

    async def bind(self, rid: str, cluster: str, node: str, attempt: int = 1) -> int:
        event = RequestBound(
            at=self.at(), attempt=attempt, placements=(Placement(cluster, node, SMALL),)
        )
        return await self.append(request_subject(rid, "RequestBound"), event)

    async def requeue(self, rid: str, cluster: str, node: str, attempt: int, reason: str) -> int:
        requeued = RequestRequeued(
            at=self.at(), attempt=attempt, reason=reason, not_before=self.at()
        )
        released = CapacityReleased(
            at=requeued.at, cluster=cluster, node=node, request_id=rid, attempt=attempt - 1,
            reason=reason,
        )  # fmt: skip
        return await self.batch(
            (request_subject(rid, "RequestRequeued"), requeued),
            (node_subject(cluster, node, "CapacityReleased"), released),
        )

    async def finish(self, rid: str, attempt: int = 1) -> int:
        event = WorkloadFinished(at=self.at(), attempt=attempt)
        return await self.append(request_subject(rid, "WorkloadFinished"), event)

    async def cluster(self, name: str, tier: str, *, ready: bool = True) -> int:
        event = ClusterDeclared(
            at=self.at(), cluster=name, tier=tier, labels={"region": f"r-{name}"}, ready=ready
        )
        return await self.append(cluster_subject(name, "ClusterDeclared"), event)

    async def node(
        self,
        cluster: str,
        name: str,
        *,
        cpu_m: int = 4000,
        ready: bool = True,
        foreign: Resources = NOTHING,
    ) -> int:
        event = NodeDeclared(
            at=self.at(),
            cluster=cluster,
            node=name,
            allocatable=Resources(cpu_m=cpu_m, memory=8 * GI, gpu=0, pods=110),
            labels={"kubernetes.io/hostname": name},
            taints=(Taint("dedicated", "NoSchedule", "edge"),) if not ready else (),
            ready=ready,
            foreign=foreign,
        )
        return await self.append(node_subject(cluster, name, "NodeDeclared"), event)


async def write_scenario(log: Log) -> int:
    """Two clusters, three nodes, and a request in each interesting state; the last seq."""
    await log.cluster("c1", "edge")
    await log.cluster("c2", "cloud", ready=False)
    await log.node("c1", "n1", foreign=Resources(cpu_m=100, memory=GI // 2, pods=3))
    await log.node("c1", "n2", ready=False)
    await log.node("c2", "n1", cpu_m=2000, ready=False)
    # Inventory changes: the later declaration replaces the earlier one.
    await log.cluster("c2", "cloud")
    await log.node("c2", "n1", cpu_m=8000)
    # bound: accepted -> claimed -> committed (+ reservation) -> bound
    await log.accept("req-bound", project="p1")
    await log.claim("req-bound")
    await log.commit("req-bound", "c1", "n1")
    await log.bind("req-bound", "c1", "n1")
    # rejected at intake
    await log.reject("req-rejected", "workload.kind: 'Foo' is not an allowed kind", "workload")
    # requeued: placed on c2/n1, binding failed, waiting for attempt 2
    await log.accept("req-requeued", policy=Policy.LOW_LATENCY, mode="fromnode", project="p2")
    await log.claim("req-requeued")
    await log.commit("req-requeued", "c2", "n1")
    await log.requeue("req-requeued", "c2", "n1", 2, "binding failed: timeout")
    # still queued
    return await log.accept("req-queued", policy=Policy.SELECTED_CLUSTER, mode="cluster",
                            fast=True)  # fmt: skip


@contextlib.asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[Projector]:
    """The projector open and following the log in a task, stopped and closed on exit."""
    await projector.open()
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await projector.close()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestClient[Any, Any]]:
    """The app on a real TCP socket on 127.0.0.1, with a client for it."""
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def dump(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a fixed order."""
    async with aiosqlite.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return {
            name: [tuple(row) for row in await db.execute_fetchall(
                f"SELECT * FROM {name} ORDER BY 1, 2")]
            for name in TABLES
        }  # fmt: skip
