"""Retention of finished requests: after `retention.finished_requests`, a request that ended
(failed, cancelled, rejected, or bound with its workload finished) leaves the log and the
read model, and its id answers 410 for `retention.expired_ids` more.

One pass: read the candidates from the read model (oldest first, at most `batch`), export
them when `export_dir` is set (durably, first), purge their histories from the log, then
append one `RequestsExpired` naming them. In that order a crash loses nothing: before the
append the read model still lists them and the next pass purges (a no-op) and records them;
the event is what every read model, rebuilt or not, turns into its 410 answers. Requests that
are not final are never candidates: their events and reservations stay whatever their age.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gsch.eventstore.appends import Write
from gsch.eventstore.compaction import purge, purge_requests, subject_counts
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ALL_EXPIRY_EVENTS, ExpiryKey, SubjectError, parse_subject
from gsch.housekeeping.export import ExportedRequest, write_export
from gsch.metrics import COMPACTION_PURGED, REQUESTS_EXPIRED
from gsch.model.events import ExpiredRequest, RequestsExpired
from gsch.projections.expiry import Ended, ended_before, event_seqs, events_of
from gsch.projections.schema import connect_reader
from gsch.runtime.config import RetentionConfig

log = logging.getLogger(__name__)

DAY = 86400.0
_PER_EVENT = 1000  # ids per RequestsExpired (well inside the log's 1 MiB message limit)


@dataclass(frozen=True)
class RetentionPass:
    expired: int
    purged_events: int
    forgotten_days: int
    export: Path | None = None


def day_of(when: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(when))


class Retention:
    def __init__(
        self,
        config: RetentionConfig,
        store: EventStore,
        db_path: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.db_path = db_path
        self.clock = clock

    async def run_once(self) -> RetentionPass:
        if self.config.finished_requests <= 0:
            return RetentionPass(0, 0, 0)
        now = self.clock()
        ended, histories, exported = await self._candidates(now)
        export = None
        if exported:
            folder = Path(self.config.export_dir or ".")
            export = await asyncio.to_thread(write_export, folder, exported, now)
        purged = await purge_requests(self.store, histories)
        forget_before = now - self.config.expired_ids
        for start in range(0, len(ended), _PER_EVENT):
            chunk = ended[start : start + _PER_EVENT]
            event = RequestsExpired(
                at=now,
                requests=tuple(
                    ExpiredRequest(request_id=e.request_id, state=e.state, ended_at=e.ended_at)
                    for e in chunk
                ),
                forget_before=forget_before,
            )
            await self.store.append(Write(ExpiryKey(day_of(now)), (event,)))
        forgotten = await self._forget_days(forget_before)
        REQUESTS_EXPIRED.inc(len(ended))
        COMPACTION_PURGED.labels(kind="request").inc(purged)
        if ended or forgotten:
            log.info(
                "retention pass",
                extra={"expired": len(ended), "purged": purged, "forgotten_days": forgotten},
            )
        return RetentionPass(len(ended), purged, forgotten, export)

    async def _candidates(
        self, now: float
    ) -> tuple[list[Ended], dict[str, dict[str, list[int]]], list[ExportedRequest]]:
        try:
            db = await connect_reader(self.db_path)
        except sqlite3.OperationalError as exc:  # not created yet
            log.info("retention waits for the read model", extra={"error": repr(exc)})
            return [], {}, []
        try:
            ended = await ended_before(db, now - self.config.finished_requests, self.config.batch)
            histories = await event_seqs(db, [e.request_id for e in ended])
            exported = []
            if self.config.export_dir:
                for request in ended:
                    exported.append(ExportedRequest(
                        request_id=request.request_id, state=request.state,
                        ended_at=request.ended_at,
                        events=await events_of(db, request.request_id),
                    ))  # fmt: skip
        finally:
            await db.close()
        return ended, histories, exported

    async def _forget_days(self, forget_before: float) -> int:
        """Remove the expiry records of days that ended before `forget_before`: their ids
        answer 404 from now on, in every read model alike (the event told them so)."""
        forgotten = 0
        for subject in await subject_counts(self.store, ALL_EXPIRY_EVENTS):
            try:
                key, _ = parse_subject(subject)
            except SubjectError:
                continue
            if not isinstance(key, ExpiryKey):
                continue
            try:
                start = calendar.timegm(time.strptime(key.day, "%Y%m%d"))
            except ValueError:
                continue  # not a day this code wrote
            if start + DAY <= forget_before:
                COMPACTION_PURGED.labels(kind="expiry").inc(await purge(self.store, subject))
                forgotten += 1
        return forgotten
