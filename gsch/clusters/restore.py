"""Find the snapshot a process starts from: the newest one that passes every check.

A snapshot is skipped, loudly (an error log line and `gsch_snapshot_load_failures_total`),
when it cannot be read, fails its checks (format version, sequence, checksum, decoding), or
lies behind the compaction watermark (the log no longer holds what came between it and the
watermark). Without a usable snapshot the process replays the log from the start, which is
only the truth while nothing has been compacted; once something has, it refuses to start
instead of planning on a state that is missing reservations.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.snapshot_codec import SnapshotCorrupt, SnapshotHeader, decode
from gsch.eventstore.snapshots import SnapshotStore, SnapshotStoreError, StoredSnapshot
from gsch.metrics import SNAPSHOT_LOAD_FAILURES

log = logging.getLogger(__name__)


class NoUsableSnapshotError(Exception):
    """The log was compacted and no snapshot at or above the watermark can be read."""


@dataclass(frozen=True)
class Restored:
    snapshot: ClusterSnapshot
    seq: int  # follow the log after this sequence (0: from the start)
    header: SnapshotHeader | None = None
    slot: str | None = None
    skipped: tuple[str, ...] = ()  # why newer snapshots were not used


async def load_slot(snapshots: SnapshotStore, stored: StoredSnapshot) -> Restored:
    """One snapshot, read and checked; SnapshotCorrupt or SnapshotStoreError otherwise."""
    blob = await snapshots.read(stored.slot)
    # Decoding folds every node: off the event loop, which keeps serving meanwhile.
    header, snapshot = await asyncio.to_thread(decode, blob)
    if header.seq != stored.seq:
        raise SnapshotCorrupt(f"slot metadata says seq {stored.seq}, snapshot holds {header.seq}")
    return Restored(snapshot, header.seq, header, stored.slot)


async def newest_snapshot(snapshots: SnapshotStore) -> Restored:
    watermark = await snapshots.watermark()
    skipped: list[str] = []
    for stored in await snapshots.list():
        reason: str | None = None
        if stored.seq < watermark:
            reason, why = "behind_watermark", f"compacted through {watermark}"
        else:
            try:
                restored = await load_slot(snapshots, stored)
            except SnapshotStoreError as exc:
                reason, why = "unreadable", str(exc)
            except SnapshotCorrupt as exc:
                reason, why = "corrupt", str(exc)
            else:
                return Restored(
                    restored.snapshot, restored.seq, restored.header, restored.slot,
                    tuple(skipped),
                )  # fmt: skip
        SNAPSHOT_LOAD_FAILURES.labels(reason=reason).inc()
        log.error(
            "snapshot skipped",
            extra={"slot": stored.slot, "seq": stored.seq, "reason": reason, "detail": why},
        )
        skipped.append(f"{stored.slot} (seq {stored.seq}): {why}")
    if watermark > 0:
        raise NoUsableSnapshotError(
            f"no usable cluster-state snapshot at or above the compaction watermark {watermark}"
            f" ({'; '.join(skipped) or 'none stored'}): the log alone no longer holds the"
            " cluster state; restore the GSCH_SNAPSHOTS object store from a backup"
        )
    if skipped:
        log.error("no usable snapshot; replaying the whole log", extra={"skipped": skipped})
    return Restored(ClusterSnapshot(), 0, skipped=tuple(skipped))
