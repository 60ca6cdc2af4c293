"""Tables of the read model, and opening a database with the pragmas the projector relies on.

The schema version lives in `PRAGMA user_version`. A database of another version is emptied
and rebuilt from the log rather than migrated: the log is the truth and replay is cheap.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3

# Placements, explanations, labels and taints are JSON text (msgspec encodings); amounts are
# integers in the units of `gsch.model.resources.Resources`.
TABLES = {
    "checkpoint": """
        CREATE TABLE checkpoint (
            stream TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
    "requests": """
        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            submitted_seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            finished INTEGER NOT NULL,
            policy TEXT,
            mode TEXT,
            form TEXT,
            level TEXT,
            blocked INTEGER NOT NULL,
            project_name TEXT,
            workspace_name TEXT,
            user_name TEXT,
            fast INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            placements TEXT NOT NULL,
            reason TEXT,
            reason_field TEXT,
            explanation TEXT,
            not_before REAL,
            submitted_at REAL,
            updated_at REAL NOT NULL,
            last_seq INTEGER NOT NULL
        )""",
    "request_placements": """
        CREATE TABLE request_placements (
            request_id TEXT NOT NULL,
            cluster TEXT NOT NULL,
            node TEXT NOT NULL,
            PRIMARY KEY (request_id, cluster, node)
        ) WITHOUT ROWID""",
    "request_events": """
        CREATE TABLE request_events (
            seq INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL,
            type TEXT NOT NULL,
            at REAL NOT NULL,
            body BLOB NOT NULL
        )""",
    "clusters": """
        CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            declared INTEGER NOT NULL,
            tier TEXT,
            labels TEXT NOT NULL,
            ready INTEGER NOT NULL,
            last_seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
    "nodes": """
        CREATE TABLE nodes (
            cluster TEXT NOT NULL,
            name TEXT NOT NULL,
            declared INTEGER NOT NULL,
            ready INTEGER NOT NULL,
            alloc_cpu_m INTEGER NOT NULL,
            alloc_memory INTEGER NOT NULL,
            alloc_gpu INTEGER NOT NULL,
            alloc_pods INTEGER NOT NULL,
            foreign_cpu_m INTEGER NOT NULL,
            foreign_memory INTEGER NOT NULL,
            foreign_gpu INTEGER NOT NULL,
            foreign_pods INTEGER NOT NULL,
            labels TEXT NOT NULL,
            taints TEXT NOT NULL,
            last_seq INTEGER NOT NULL,
            PRIMARY KEY (cluster, name)
        ) WITHOUT ROWID""",
    # A release keeps the row (active = 0) so that a replayed, older reservation cannot
    # bring it back: every write is guarded by last_seq.
    "reservations": """
        CREATE TABLE reservations (
            cluster TEXT NOT NULL,
            node TEXT NOT NULL,
            request_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            cpu_m INTEGER NOT NULL,
            memory INTEGER NOT NULL,
            gpu INTEGER NOT NULL,
            pods INTEGER NOT NULL,
            active INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            PRIMARY KEY (cluster, node, request_id)
        ) WITHOUT ROWID""",
    # Requests retention removed (a `RequestsExpired` event): the API answers 410 for them
    # until the log says to forget them (`forget_before`).
    "expired_requests": """
        CREATE TABLE expired_requests (
            id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            ended_at REAL NOT NULL,
            expired_at REAL NOT NULL,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
    # The cluster tables were seeded from a snapshot at `seq` (the log behind it had been
    # compacted): cluster events at or below it are already in and are not applied again.
    "cluster_seed": """
        CREATE TABLE cluster_seed (
            stream TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        ) WITHOUT ROWID""",
}

INDEXES = (
    "CREATE INDEX requests_by_submitted ON requests (submitted_seq)",
    "CREATE INDEX requests_by_state ON requests (state, submitted_seq)",
    "CREATE INDEX requests_by_policy ON requests (policy, submitted_seq)",
    "CREATE INDEX requests_by_project ON requests (project_name, submitted_seq)",
    "CREATE INDEX placements_by_cluster ON request_placements (cluster, request_id)",
    "CREATE INDEX request_events_by_request ON request_events (request_id, seq)",
    "CREATE INDEX reservations_active ON reservations (cluster, node) WHERE active = 1",
    "CREATE INDEX requests_ended ON requests (updated_at) WHERE state IN"
    " ('failed', 'cancelled', 'rejected') OR finished = 1",
    "CREATE INDEX expired_by_time ON expired_requests (expired_at)",
)


async def connect_writer(path: Path) -> aiosqlite.Connection:
    """The projector's connection: WAL, so API readers never wait for a batch to commit."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode may lose the last commits on power loss, never consistency;
        # the checkpoint goes back with them and the events are applied again.
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA busy_timeout = 5000")
        await ensure_schema(db)
    except BaseException:
        await db.close()
        raise
    return db


async def connect_reader(path: Path) -> aiosqlite.Connection:
    """A read-only connection; fails if the projector has not created the database yet."""
    db = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA query_only = ON")
    except BaseException:
        await db.close()
        raise
    return db


async def ensure_schema(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        existing = await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        if existing:
            log.warning(
                "read model of another schema version discarded; it is rebuilt from the log",
                extra={"found": version, "expected": SCHEMA_VERSION},
            )
        for (name,) in existing:
            await db.execute(f'DROP TABLE "{name}"')
        for ddl in TABLES.values():
            await db.execute(ddl)
        for ddl in INDEXES:
            await db.execute(ddl)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.execute("COMMIT")
    except BaseException:
        await db.rollback()
        raise
