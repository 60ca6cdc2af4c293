"""The queries of the read API, on one read snapshot of the read model.

Every listing has an explicit, total order (requests by the sequence of their first event,
clusters and nodes by name), so equal read models give byte-equal answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite
import msgspec

from gsch.model.events import Taint
from gsch.model.request import QueueLevel
from gsch.model.states import FINAL_STATES, State
from gsch.projections import expiry
from gsch.projections.request_row import COLUMNS, RequestRow, from_record
from gsch.projections.views import (
    Amount,
    ClusterDetail,
    ClusterList,
    ClusterSummary,
    EventRecord,
    NodeList,
    NodeView,
    PlacementView,
    QueueList,
    QueueView,
    RequestDetail,
    RequestEvents,
    RequestSummary,
)

LEVELS = tuple(level.value for level in QueueLevel)  # first, fast, base: dispatch order
BLOCKED = "blocked"  # a queued request waiting for capacity (counted apart, and as queued)
_labels = msgspec.json.Decoder(dict[str, str])
_taints = msgspec.json.Decoder(tuple[Taint, ...])


class RequestFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Each field: any of these values (empty: no condition)."""

    states: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    submitted_after: float | None = None  # unix seconds, inclusive
    submitted_before: float | None = None  # unix seconds, exclusive


_REQUEST_COLUMNS = ", ".join(f"r.{c}" for c in COLUMNS)

_NODES = """
    SELECT n.cluster, n.name, n.declared, n.ready,
        n.alloc_cpu_m, n.alloc_memory, n.alloc_gpu, n.alloc_pods,
        n.foreign_cpu_m, n.foreign_memory, n.foreign_gpu, n.foreign_pods,
        coalesce(r.cpu_m, 0), coalesce(r.memory, 0), coalesce(r.gpu, 0), coalesce(r.pods, 0),
        coalesce(r.count, 0), n.labels, n.taints
    FROM nodes n LEFT JOIN (
        SELECT cluster, node, sum(cpu_m) AS cpu_m, sum(memory) AS memory, sum(gpu) AS gpu,
            sum(pods) AS pods, count(*) AS count
        FROM reservations WHERE active = 1 GROUP BY cluster, node
    ) r ON r.cluster = n.cluster AND r.node = n.name
    {where}
    ORDER BY n.cluster, n.name"""

_CLUSTERS = "SELECT name, declared, tier, labels, ready FROM clusters {where} ORDER BY name"


class Snapshot:
    """Queries inside one read transaction; `sequence` is the checkpoint they all reflect."""

    def __init__(self, db: aiosqlite.Connection, sequence: int) -> None:
        self._db = db
        self.sequence = sequence

    @classmethod
    async def begin(cls, db: aiosqlite.Connection, stream: str) -> Snapshot:
        async with db.execute("SELECT seq FROM checkpoint WHERE stream = ?", (stream,)) as cur:
            row = await cur.fetchone()
        return cls(db, int(row[0]) if row else 0)

    # --- requests ------------------------------------------------------------------------

    async def request(self, request_id: str) -> RequestDetail | None:
        records = await self._db.execute_fetchall(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r WHERE r.id = ?", (request_id,)
        )
        for record in records:
            row = from_record(record)
            return RequestDetail(
                **msgspec.structs.asdict(_summary(row)),
                not_before=row.not_before,
                explanation=row.explanation,
                sequence=self.sequence,
            )
        return None

    async def expired(self, request_id: str) -> expiry.Expired | None:
        """The request was removed by retention (its id still answers 410)."""
        return await expiry.expired(self._db, request_id)

    async def requests(
        self, where: RequestFilter, *, after: int | None, limit: int, newest_first: bool = False
    ) -> tuple[list[RequestSummary], int | None]:
        """Up to `limit` requests in order of their first event (`submitted_seq`), from just
        past the key `after` (None: from the start), and the key to continue from (None on
        the last page). The key is unique and never changes, so pages are stable."""
        conditions: list[str] = []
        params: list[Any] = []
        if after is not None:
            conditions.append("r.submitted_seq < ?" if newest_first else "r.submitted_seq > ?")
            params.append(after)
        for column, values in (
            ("r.state", where.states),
            ("r.policy", where.policies),
            ("r.project_name", where.projects),
        ):
            if values:
                conditions.append(f"{column} IN ({_marks(values)})")
                params.extend(values)
        if where.clusters:
            conditions.append(
                "EXISTS (SELECT 1 FROM request_placements p WHERE p.request_id = r.id"
                f" AND p.cluster IN ({_marks(where.clusters)}))"
            )
            params.extend(where.clusters)
        if where.submitted_after is not None:
            conditions.append("r.submitted_at >= ?")
            params.append(where.submitted_after)
        if where.submitted_before is not None:
            conditions.append("r.submitted_at < ?")
            params.append(where.submitted_before)
        params.append(limit + 1)
        where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if newest_first else "ASC"
        records = await self._db.execute_fetchall(
            f"SELECT {_REQUEST_COLUMNS} FROM requests r {where_sql}"
            f" ORDER BY r.submitted_seq {order} LIMIT ?",
            params,
        )
        items = [_summary(from_record(record)) for record in records]
        if len(items) > limit:
            del items[limit:]
            return items, items[-1].submitted_seq
        return items, None

    async def changes(
        self, *, after: int, request_id: str | None = None, limit: int = 500
    ) -> list[EventRecord]:
        """Request events after stream sequence `after`, in order (the change feed)."""
        where = "seq > ?"
        params: list[Any] = [after]
        if request_id is not None:
            where += " AND request_id = ?"
            params.append(request_id)
        records = await self._db.execute_fetchall(
            f"SELECT seq, request_id, type, at, body FROM request_events WHERE {where}"
            " ORDER BY seq LIMIT ?",
            [*params, limit],
        )
        return [
            EventRecord(seq=seq, request_id=rid, type=kind, at=at, event=msgspec.Raw(body))
            for seq, rid, kind, at, body in records
        ]

    async def queues(self) -> QueueList:
        """Unfinished requests per queue level, as the log's events set it (the level of the
        acceptance or of the latest requeue), with the blocked ones counted apart."""
        records = await self._db.execute_fetchall(
            "SELECT level, state, blocked, count(*) FROM requests"
            " WHERE state IN ('queued', 'scheduling', 'scheduled') GROUP BY level, state, blocked",
        )
        counts: dict[tuple[str, str], int] = {}
        for level, state, blocked, count in records:
            key = (level, BLOCKED if blocked else state)
            counts[key] = counts.get(key, 0) + count
        items = tuple(
            QueueView(
                level=level,
                queued=counts.get((level, State.QUEUED.value), 0) + counts.get((level, BLOCKED), 0),
                blocked=counts.get((level, BLOCKED), 0),
                scheduling=counts.get((level, State.SCHEDULING.value), 0),
                scheduled=counts.get((level, State.SCHEDULED.value), 0),
            )
            for level in LEVELS
        )
        return QueueList(items=items, sequence=self.sequence)

    async def request_events(self, request_id: str) -> RequestEvents | None:
        records = await self._db.execute_fetchall(
            "SELECT seq, type, at, body FROM request_events WHERE request_id = ? ORDER BY seq",
            (request_id,),
        )
        items = tuple(
            EventRecord(seq=seq, request_id=request_id, type=kind, at=at, event=msgspec.Raw(body))
            for seq, kind, at, body in records
        )
        if not items:
            return None
        return RequestEvents(request_id=request_id, items=items, sequence=self.sequence)

    # --- clusters and nodes --------------------------------------------------------------

    async def clusters(self) -> ClusterList:
        return ClusterList(items=tuple(await self._clusters(None)), sequence=self.sequence)

    async def cluster(self, name: str) -> ClusterDetail | None:
        for summary in await self._clusters(name):
            return ClusterDetail(**msgspec.structs.asdict(summary), sequence=self.sequence)
        return None

    async def nodes(self, cluster: str) -> NodeList | None:
        if not await self._db.execute_fetchall("SELECT 1 FROM clusters WHERE name = ?", (cluster,)):
            return None
        nodes = await self._nodes(cluster)
        return NodeList(cluster=cluster, items=tuple(nodes), sequence=self.sequence)

    async def _clusters(self, name: str | None) -> list[ClusterSummary]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        records = await self._db.execute_fetchall(_CLUSTERS.format(where=where), params)
        if not records:
            return []
        by_cluster: dict[str, list[NodeView]] = {}
        for node in await self._nodes(name):
            by_cluster.setdefault(node.cluster, []).append(node)
        return [
            _cluster(name, bool(declared), tier, labels, bool(ready), by_cluster.get(name, []))
            for name, declared, tier, labels, ready in records
        ]

    async def _nodes(self, cluster: str | None) -> list[NodeView]:
        where, params = ("WHERE n.cluster = ?", (cluster,)) if cluster is not None else ("", ())
        records = await self._db.execute_fetchall(_NODES.format(where=where), params)
        return [_node(record) for record in records]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _summary(row: RequestRow) -> RequestSummary:
    placements = tuple(PlacementView(p.cluster, p.node) for p in row.placements)
    return RequestSummary(
        id=row.id,
        state=row.state,
        finished=row.finished,
        final=row.finished or State(row.state) in FINAL_STATES,
        policy=row.policy,
        mode=row.mode,
        form=row.form,
        level=row.level,
        project=row.project,
        workspace=row.workspace,
        user=row.user,
        fast=row.fast,
        attempts=row.attempts,
        placement=placements[0] if placements else None,
        placements=placements,
        reason=row.reason,
        reason_field=row.reason_field,
        submitted_at=row.submitted_at,
        updated_at=row.updated_at,
        submitted_seq=row.submitted_seq,
        last_seq=row.last_seq,
    )


def _node(record: Any) -> NodeView:
    cluster, name, declared, ready, *amounts, count, labels, taints = record
    allocatable, foreign, reserved = (Amount(*amounts[i : i + 4]) for i in (0, 4, 8))
    return NodeView(
        cluster=cluster,
        name=name,
        declared=bool(declared),
        ready=bool(ready),
        allocatable=allocatable,
        foreign=foreign,
        reserved=reserved,
        free=allocatable - foreign - reserved,
        reservations=count,
        labels=_labels.decode(labels),
        taints=_taints.decode(taints),
    )


def _cluster(
    name: str, declared: bool, tier: str | None, labels: str, ready: bool, nodes: list[NodeView]
) -> ClusterSummary:
    zero = Amount()
    return ClusterSummary(
        name=name,
        declared=declared,
        tier=tier,
        labels=_labels.decode(labels),
        ready=ready,
        nodes=len(nodes),
        ready_nodes=sum(1 for node in nodes if node.ready),
        allocatable=sum((node.allocatable for node in nodes), zero),
        foreign=sum((node.foreign for node in nodes), zero),
        reserved=sum((node.reserved for node in nodes), zero),
        free=sum((node.free for node in nodes), zero),
    )
