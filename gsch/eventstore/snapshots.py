"""Cluster-state snapshots in the JetStream object store `GSCH_SNAPSHOTS`, and the
compaction watermark beside them.

An object store, not a KV bucket: a snapshot of a large fleet is megabytes and a KV value is
one message (at most the server's max payload, 1 MiB by default), while the object store
chunks any size and writes its metadata last, so a writer killed half way leaves the previous
object as it was. Snapshots go into a few fixed slots (`cluster-state.0` … `.<keep-1>`), the
oldest overwritten each time: the bucket holds at most `keep` snapshots plus one metadata
record per slot, whatever the age of the installation.

The watermark (`compacted-through`) is the sequence below which cluster events may be gone
from the log: only a snapshot at or above it, completed by the log after it, gives the true
state. It is written before anything is purged and never moves back.

The purged mark (`compacted-purged-through`) is the cut of the last compaction pass that
finished: cluster events at or below it hold at most one message per subject, so the next
pass only reads what came after it. It is written after a pass completes and never moves
back; lost or unreadable, the next pass reads the log from its beginning (slower, same result).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import ObjectMeta
from nats.js.object_store import ObjectStore

log = logging.getLogger(__name__)

SNAPSHOT_BUCKET = "GSCH_SNAPSHOTS"
SLOT_PREFIX = "cluster-state."
WATERMARK = "compacted-through"
PURGED_MARK = "compacted-purged-through"
CHUNK_SUBJECTS = f"$O.{SNAPSHOT_BUCKET}.C.>"


class SnapshotStoreError(Exception):
    """The object store could not be read or written."""


class MarkUnreadable(SnapshotStoreError):
    """A mark's metadata is not what this code writes (garbled, or from another program)."""


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A slot's metadata: which sequence it says it holds (checked again when loaded)."""

    slot: str
    seq: int
    created_at: float
    size: int
    nuid: str


class SnapshotStore:
    def __init__(self, nc: Client, *, keep: int = 3, timeout: float = 30.0) -> None:
        if keep < 2:
            raise ValueError("keep at least two snapshots: compaction stays behind the newest")
        self._js = nc.jetstream(timeout=timeout)
        self._timeout = timeout
        self.keep = keep
        self._bucket: ObjectStore | None = None

    async def _store(self) -> ObjectStore:
        if self._bucket is None:
            try:
                self._bucket = await self._js.object_store(SNAPSHOT_BUCKET)
            except nats.js.errors.NotFoundError as exc:  # BucketNotFoundError too
                raise SnapshotStoreError(
                    f"object store {SNAPSHOT_BUCKET} missing: run `gsch streams apply`"
                ) from exc
        return self._bucket

    async def exists(self) -> bool:
        try:
            await self._store()
        except SnapshotStoreError:
            return False
        return True

    async def list(self) -> list[StoredSnapshot]:
        """The snapshots the slots hold, newest (highest sequence) first."""
        bucket = await self._store()
        try:
            infos = await asyncio.wait_for(bucket.list(ignore_deletes=True), self._timeout)
        except nats.js.errors.NotFoundError:
            return []
        found = []
        for info in infos:
            if not info.name.startswith(SLOT_PREFIX):
                continue
            try:
                described = json.loads(info.description or "{}")
                found.append(StoredSnapshot(
                    info.name, int(described["seq"]), float(described["created_at"]),
                    int(info.size or 0), info.nuid or "",
                ))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                log.error("snapshot slot with unreadable metadata", extra={"slot": info.name})
        return sorted(found, key=lambda s: s.seq, reverse=True)

    async def read(self, slot: str) -> bytes:
        bucket = await self._store()
        try:
            # nats-py waits for ever on an object whose chunks are gone: bound it.
            result = await asyncio.wait_for(bucket.get(slot), self._timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            raise SnapshotStoreError(f"{slot}: {exc!r}") from exc
        return bytes(result.data or b"")

    async def write(self, blob: bytes, seq: int, created_at: float) -> str:
        """Store a snapshot in the slot of the oldest one (or a free slot); returns the slot."""
        held = await self.list()
        slots = {s.slot for s in held}
        free = [f"{SLOT_PREFIX}{i}" for i in range(self.keep) if f"{SLOT_PREFIX}{i}" not in slots]
        slot = free[0] if free else held[-1].slot
        meta = ObjectMeta(
            name=slot,
            description=json.dumps({"seq": seq, "created_at": created_at}),
        )
        bucket = await self._store()
        try:
            await bucket.put(slot, blob, meta=meta)
        except nats.errors.Error as exc:
            raise SnapshotStoreError(f"writing {slot}: {exc!r}") from exc
        return slot

    async def _description(self, name: str) -> str | None:
        """A mark's metadata description; None when it was never written."""
        bucket = await self._store()
        try:
            info = await bucket.get_info(name)
        except nats.js.errors.NotFoundError:
            return None
        return info.description or ""

    async def _raise_mark(self, name: str, through: int, current: int) -> int:
        if through <= current:
            return current
        bucket = await self._store()
        meta = ObjectMeta(name=name, description=json.dumps({"through": through}))
        await bucket.put(name, b"", meta=meta)
        return through

    async def watermark(self) -> int:
        """The sequence through which cluster events may have been compacted (0: none)."""
        return int(json.loads(await self._description(WATERMARK) or "{}").get("through", 0))

    async def raise_watermark(self, through: int) -> int:
        """Record that compaction may remove cluster events through `through` (never lowers)."""
        return await self._raise_mark(WATERMARK, through, await self.watermark())

    async def purged_through(self) -> int | None:
        """The cut of the last compaction pass that finished (None: none recorded).
        Raises MarkUnreadable when the record is garbled."""
        described = await self._description(PURGED_MARK)
        if described is None:
            return None
        try:
            through = json.loads(described)["through"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MarkUnreadable(f"{PURGED_MARK}: {described[:200]!r}") from exc
        if not isinstance(through, int) or isinstance(through, bool) or through < 0:
            raise MarkUnreadable(f"{PURGED_MARK}: {described[:200]!r}")
        return through

    async def record_purged(self, through: int) -> int:
        """Record that a compaction pass through `through` finished. Never lowers a record
        another pass made, but replaces a garbled one, or one beyond the watermark (no pass
        can have finished there: each raises the watermark first)."""
        try:
            current = await self.purged_through() or 0
        except MarkUnreadable:
            current = 0
        if current > await self.watermark():
            current = 0
        return await self._raise_mark(PURGED_MARK, through, current)

    async def orphan_chunks(self) -> builtins.list[str]:
        """Chunk subjects no metadata refers to: what a writer killed half way left behind."""
        bucket = await self._store()
        referenced: set[str] = set()
        try:
            for info in await asyncio.wait_for(bucket.list(ignore_deletes=True), self._timeout):
                if info.nuid:
                    referenced.add(info.nuid)
        except nats.js.errors.NotFoundError:
            pass
        stream = await self._js.stream_info(
            f"OBJ_{SNAPSHOT_BUCKET}", subjects_filter=CHUNK_SUBJECTS
        )
        subjects = stream.state.subjects or {}
        return sorted(s for s in subjects if s.rsplit(".", 1)[-1] not in referenced)

    async def purge_chunks(self, subject: str) -> None:
        await self._js.purge_stream(f"OBJ_{SNAPSHOT_BUCKET}", subject=subject)
