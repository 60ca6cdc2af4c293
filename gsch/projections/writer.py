"""Apply a batch of events to the read model in one transaction, checkpoint included.

Every write is guarded by the stream sequence of the event that made it (`last_seq`), so
applying an event that is already in the model changes nothing. Request rows are folded in
Python from the rows as stored (one read per batch); cluster, node and reservation rows are
whole-row upserts in stream order. The number of SQLite calls per batch does not depend on
its size: each one is a hop to aiosqlite's thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite
import msgspec

from gsch.eventstore.store import StoredEvent
from gsch.model.events import (
    REQUEST_EVENTS,
    CallbackDelivered,
    CallbackFailed,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    NodeDeclared,
    RequestBound,
    RequestsExpired,
    encode_event,
    event_type,
)
from gsch.projections.request_row import (
    COLUMNS,
    RequestRow,
    apply_request_event,
    from_record,
    to_params,
)

_encoder = msgspec.json.Encoder()


_UPSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("id", "submitted_seq"))
    + " WHERE excluded.last_seq > requests.last_seq"
)
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO request_events (seq, request_id, type, at, body) VALUES (?, ?, ?, ?, ?)"
)
_DELETE_PLACEMENTS = "DELETE FROM request_placements WHERE request_id = ?"
_INSERT_PLACEMENT = (
    "INSERT OR IGNORE INTO request_placements (request_id, cluster, node) VALUES (?, ?, ?)"
)
# A node or a reservation may be reported before its cluster is declared: a placeholder row
# (declared = 0, last_seq = 0) keeps the totals whole until the declaration overwrites it.
_ENSURE_CLUSTER = (
    "INSERT OR IGNORE INTO clusters (name, declared, tier, labels, ready, last_seq) "
    "VALUES (?, 0, NULL, '{}', 0, 0)"
)
_UPSERT_CLUSTER = """
    INSERT INTO clusters (name, declared, tier, labels, ready, last_seq)
    VALUES (?, 1, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET declared = 1, tier = excluded.tier,
        labels = excluded.labels, ready = excluded.ready, last_seq = excluded.last_seq
    WHERE excluded.last_seq > clusters.last_seq"""
_ENSURE_NODE = """
    INSERT OR IGNORE INTO nodes (cluster, name, declared, ready, alloc_cpu_m, alloc_memory,
        alloc_gpu, alloc_pods, foreign_cpu_m, foreign_memory, foreign_gpu, foreign_pods,
        labels, taints, last_seq)
    VALUES (?, ?, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{}', '[]', 0)"""
_UPSERT_NODE = """
    INSERT INTO nodes (cluster, name, declared, ready, alloc_cpu_m, alloc_memory, alloc_gpu,
        alloc_pods, foreign_cpu_m, foreign_memory, foreign_gpu, foreign_pods, labels, taints,
        last_seq)
    VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (cluster, name) DO UPDATE SET declared = 1, ready = excluded.ready,
        alloc_cpu_m = excluded.alloc_cpu_m, alloc_memory = excluded.alloc_memory,
        alloc_gpu = excluded.alloc_gpu, alloc_pods = excluded.alloc_pods,
        foreign_cpu_m = excluded.foreign_cpu_m, foreign_memory = excluded.foreign_memory,
        foreign_gpu = excluded.foreign_gpu, foreign_pods = excluded.foreign_pods,
        labels = excluded.labels, taints = excluded.taints, last_seq = excluded.last_seq
    WHERE excluded.last_seq > nodes.last_seq"""
_UPSERT_RESERVATION = """
    INSERT INTO reservations (cluster, node, request_id, attempt, cpu_m, memory, gpu, pods,
        active, last_seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (cluster, node, request_id) DO UPDATE SET attempt = excluded.attempt,
        cpu_m = excluded.cpu_m, memory = excluded.memory, gpu = excluded.gpu,
        pods = excluded.pods, active = excluded.active, last_seq = excluded.last_seq
    WHERE excluded.last_seq > reservations.last_seq"""
# Retention: the request's rows go, an id stays to answer 410; released reservations of
# anything before the expiry event are history the log has left behind too.
_DELETE_REQUEST = "DELETE FROM requests WHERE id = ?"
_DELETE_REQUEST_EVENTS = "DELETE FROM request_events WHERE request_id = ?"
_INSERT_EXPIRED = """
    INSERT INTO expired_requests (id, state, ended_at, expired_at, seq) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING"""
_FORGET_EXPIRED = "DELETE FROM expired_requests WHERE expired_at < ?"
_FORGET_RELEASED = "DELETE FROM reservations WHERE active = 0 AND last_seq < ?"
_SAVE_CHECKPOINT = """
    INSERT INTO checkpoint (stream, seq) VALUES (?, ?)
    ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > checkpoint.seq"""


class _Batch:
    """The statements of one batch, grouped per table, each group in stream order."""

    def __init__(self, cluster_floor: int = 0) -> None:
        # Cluster events at or below this sequence are in the tables already (seeded from a
        # snapshot): the log behind it was compacted, what is left there is not to be folded.
        self.cluster_floor = cluster_floor
        self.expired: list[tuple[StoredEvent, RequestsExpired]] = []
        self.request_events: dict[str, list[StoredEvent]] = {}
        self.event_rows: list[tuple[Any, ...]] = []
        self.ensure_clusters: list[tuple[Any, ...]] = []
        self.clusters: list[tuple[Any, ...]] = []
        self.ensure_nodes: list[tuple[Any, ...]] = []
        self.nodes: list[tuple[Any, ...]] = []
        self.reservations: list[tuple[Any, ...]] = []

    def add(self, stored: StoredEvent) -> None:
        event, seq = stored.event, stored.seq
        if isinstance(event, REQUEST_EVENTS):
            request_id = stored.request_id
            if request_id is None:
                return  # not in a request's history: nothing to fold it into
            self.request_events.setdefault(request_id, []).append(stored)
            self.event_rows.append(
                (seq, request_id, event_type(event), event.at, encode_event(event))
            )
            return
        if isinstance(event, CallbackDelivered | CallbackFailed):
            # Listed with the request's events; they change nothing about the request.
            self.event_rows.append(
                (seq, event.request_id, event_type(event), event.at, encode_event(event))
            )
            return
        if isinstance(event, RequestsExpired):
            self.expired.append((stored, event))
            return
        if seq <= self.cluster_floor:
            return
        match event:
            case ClusterDeclared():
                self.clusters.append(
                    (event.cluster, event.tier, _json(event.labels), event.ready, seq)
                )
            case NodeDeclared():
                self.ensure_clusters.append((event.cluster,))
                alloc, foreign = event.allocatable, event.foreign
                self.nodes.append((
                    event.cluster, event.node, event.ready,
                    alloc.cpu_m, alloc.memory, alloc.gpu, alloc.pods,
                    foreign.cpu_m, foreign.memory, foreign.gpu, foreign.pods,
                    _json(event.labels), _json(event.taints), seq,
                ))  # fmt: skip
            case CapacityReserved():
                self._ensure_node(event.cluster, event.node)
                amount = event.amount
                self.reservations.append((
                    event.cluster, event.node, event.request_id, event.attempt,
                    amount.cpu_m, amount.memory, amount.gpu, amount.pods, True, seq,
                ))  # fmt: skip
            case CapacityReleased():
                self._ensure_node(event.cluster, event.node)
                self.reservations.append(
                    (event.cluster, event.node, event.request_id, event.attempt,
                     0, 0, 0, 0, False, seq)
                )  # fmt: skip
            case _:
                pass  # latency reports are not part of this read model

    def _ensure_node(self, cluster: str, node: str) -> None:
        self.ensure_clusters.append((cluster,))
        self.ensure_nodes.append((cluster, node))


class Bound(msgspec.Struct, frozen=True):
    """A request reached `bound` in this batch: when, and how long after its submission."""

    at: float
    seconds: float


async def apply_batch(
    db: aiosqlite.Connection,
    stream: str,
    events: Iterable[StoredEvent],
    checkpoint: int,
    cluster_floor: int = 0,
) -> list[Bound]:
    """Apply `events` (in stream order) and move the checkpoint to `checkpoint`, atomically.
    Returns the bindings the batch recorded (for the end-to-end latency metric)."""
    batch = _Batch(cluster_floor)
    for stored in events:
        batch.add(stored)
    await db.execute("BEGIN IMMEDIATE")
    try:
        # Expiries first: the removed requests' events are long before this batch.
        for stored, expired in batch.expired:
            await _expire(db, stored.seq, expired)
        bound = await _write_requests(db, batch.request_events)
        await _many(db, _INSERT_EVENT, batch.event_rows)
        await _many(db, _ENSURE_CLUSTER, batch.ensure_clusters)
        await _many(db, _UPSERT_CLUSTER, batch.clusters)
        await _many(db, _ENSURE_NODE, batch.ensure_nodes)
        await _many(db, _UPSERT_NODE, batch.nodes)
        await _many(db, _UPSERT_RESERVATION, batch.reservations)
        await db.execute(_SAVE_CHECKPOINT, (stream, checkpoint))
        await db.execute("COMMIT")
    except BaseException:
        await db.rollback()
        raise
    return bound


async def _expire(db: aiosqlite.Connection, seq: int, event: RequestsExpired) -> None:
    ids = [(request.request_id,) for request in event.requests]
    await _many(db, _DELETE_REQUEST, ids)
    await _many(db, _DELETE_PLACEMENTS, ids)
    await _many(db, _DELETE_REQUEST_EVENTS, ids)
    await _many(db, _INSERT_EXPIRED, [
        (request.request_id, request.state, request.ended_at, event.at, seq)
        for request in event.requests
    ])  # fmt: skip
    await db.execute(_FORGET_EXPIRED, (event.forget_before,))
    # Guard rows of released reservations exist so that an older event replayed cannot bring
    # a reservation back; nothing before this event is replayed again (the checkpoint is past it).
    await db.execute(_FORGET_RELEASED, (seq,))


async def read_checkpoint(db: aiosqlite.Connection, stream: str) -> int:
    async with db.execute("SELECT seq FROM checkpoint WHERE stream = ?", (stream,)) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _write_requests(
    db: aiosqlite.Connection, events: dict[str, list[StoredEvent]]
) -> list[Bound]:
    if not events:
        return []
    rows = await _load_requests(db, list(events))
    changed: list[RequestRow] = []
    bound: list[Bound] = []
    for request_id, stored_events in events.items():
        row = rows.get(request_id)
        before = row.last_seq if row is not None else 0
        for stored in stored_events:
            was = row.state if row is not None else None
            row = apply_request_event(row, request_id, stored.event, stored.seq)
            event = stored.event
            if isinstance(event, RequestBound) and was != row.state and row.submitted_at:
                bound.append(Bound(event.at, max(0.0, event.at - row.submitted_at)))
        if row is not None and row.last_seq > before:
            changed.append(row)
    await _many(db, _UPSERT_REQUEST, [to_params(row) for row in changed])
    await _many(db, _DELETE_PLACEMENTS, [(row.id,) for row in changed])
    await _many(
        db,
        _INSERT_PLACEMENT,
        [(row.id, p.cluster, p.node) for row in changed for p in row.placements],
    )
    return bound


async def _load_requests(db: aiosqlite.Connection, ids: Sequence[str]) -> dict[str, RequestRow]:
    rows: dict[str, RequestRow] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        query = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE id IN ({marks})"
        for record in await db.execute_fetchall(query, chunk):
            row = from_record(record)
            rows[row.id] = row
    return rows


async def _many(db: aiosqlite.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:  # every call is a thread hop; most batches touch few tables
        await db.executemany(sql, rows)


def _json(value: object) -> str:
    return _encoder.encode(value).decode()
