"""Read-only access to the read model: consistent snapshots over a small connection pool.

A snapshot is one read transaction. In WAL mode it sees the database as of its first read,
which is the checkpoint: the data it returns and the sequence it reports always agree, however
far the projector has moved on meanwhile. Readers use their own connections, never the
projector's, which may be in the middle of a batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from gsch.projections.queries import Snapshot
from gsch.projections.schema import connect_reader


class ReadModelUnavailableError(Exception):
    """The database cannot be opened (the projector has not created it yet)."""


class ReadModel:
    def __init__(self, db_path: Path, stream: str, *, connections: int = 4) -> None:
        self._path = db_path
        self._stream = stream
        self._size = connections
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        db = await self._acquire()
        try:
            await db.execute("BEGIN")
            try:
                yield await Snapshot.begin(db, self._stream)
            finally:
                await db.execute("COMMIT")
        finally:
            self._idle.put_nowait(db)

    async def close(self) -> None:
        connections, self._all = self._all, []
        self._idle = asyncio.Queue()
        for db in connections:
            await db.close()

    async def _acquire(self) -> aiosqlite.Connection:
        if self._idle.empty():
            async with self._opening:
                if self._idle.empty() and len(self._all) < self._size:
                    try:
                        db = await connect_reader(self._path)
                    except sqlite3.OperationalError as exc:
                        raise ReadModelUnavailableError(f"{self._path}: {exc}") from exc
                    self._all.append(db)
                    return db
        return await self._idle.get()
