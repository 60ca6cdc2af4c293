"""Remove from the log what a snapshot or retention made redundant, never a live fact.

Cluster events at or below a compaction cut (the sequence of a verified snapshot) are purged
subject by subject, except each subject's last message. Keeping the last message of every
subject keeps the last message of every scope too (a scope's last message is the last of its
own subject), so a conditional append (`Nats-Expected-Last-Subject-Sequence`, on a node's
scope or on one subject) is checked against exactly what it was checked against before, and
`last(subject)` still answers what the log last said (an inventory publisher's "what did I
declare"). Everything after the cut stays: a process that starts from the snapshot at the cut,
or a newer one, follows the log from there and misses nothing.

Request histories are removed whole, only for requests retention has expired (final, and
older than `retention.finished_requests`).

Purges are idempotent: running the same compaction twice, or two processes running it at
once, removes nothing more. Killed half way, a later run finishes the job.

What a purge costs the server (nats-server 2.15: server/filestore.go `PurgeEx`, stream.go
`purgeLocked` and `storeUpdates`; profiled with perf on the history bench):
- A purge that removes several messages makes every consumer of the stream recount what it
  has pending from scratch (`consumer.streamNumPending` -> `NumPendingMulti`), walking the
  stream's whole subject index: one subject per request event until retention, so the walk
  grows with the log. One purge per crowded subject (what this did before) spent 88 % of a
  pass there: 3 s of server CPU per pass at 23k sequences, 30 s at 116k, and one core for
  810 s for the first pass over a 10M-event history.
- A purge that removes one message only tells the consumers of that subject to decrement a
  count. Inside the store it walks from the subject's first message in a block to the
  purge's bound: bounded just above the message it removes, that is the message itself;
  bounded below the next one (or recounting a subject's first message afterwards), it is
  the gap to it, which a pass over many messages of a subject pays again and again.
So a pass (1) reads only the range since the previous finished pass, (`after`, `through`],
headers only (`ranges.py`): the subjects to touch and their messages, in the time the range
takes to read; (2) removes, per subject, the one message a previous pass kept (a purge below
the first in the range: one walk over the gap to it) and then each message in the range but
the newest, oldest first, each with a purge bounded just above it. The server's work is then
constant per message removed plus one gap per subject touched: a pass costs what it removes,
whatever the log holds. A full pass (`after` 0: the first, or when the previous cut is not
known) reads every cluster event the log still holds and removes what that holds. Deleting
messages one by one (`STREAM.MSG.DELETE`) does the same work per message in the store
(`removeMsg`), and needs the log to allow deletes (`deny_delete: false`): nothing to gain
for loosening the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gsch.eventstore.ranges import RangeReadStalled, seqs_by_subject
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS, request_subject

# The server lists at most this many subjects per STREAM.INFO answer; the rest by offset.
_SUBJECTS_PAGE = 100_000
# Latency and pod reports in a log written before they moved to the telemetry stream.
LEGACY_REPORTS = ("gsch.events.cluster.*.latency.*.*", "gsch.events.cluster.*.pods.*.*")
# Purges in flight at once (of as many subjects, each purged one message after another):
# enough to hide round trips, few enough to leave the server to the scheduler.
_IN_FLIGHT = 32


class CompactionError(Exception):
    """The server refused a purge (e.g. a log created before compaction existed: it denies
    purges and cannot be changed in place)."""


@dataclass(frozen=True, slots=True)
class Compacted:
    through: int
    subjects: int  # subjects with messages in the range read
    purged: int  # messages removed


async def _api(store: EventStore, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await store.nc.request(
        f"$JS.API.{subject}", json.dumps(body).encode(), timeout=store.request_timeout
    )
    answer: dict[str, Any] = json.loads(reply.data)
    error = answer.get("error")
    if error:
        raise CompactionError(f"{subject}: {error.get('description')} ({error.get('err_code')})")
    return answer


async def subject_counts(store: EventStore, subjects: str) -> dict[str, int]:
    """Messages per subject matching `subjects` (a wildcard), all pages."""
    counts: dict[str, int] = {}
    offset = 0
    while True:
        info = await _api(
            store,
            f"STREAM.INFO.{store.stream}",
            {"subjects_filter": subjects, "offset": offset},
        )
        page = (info.get("state") or {}).get("subjects") or {}
        counts.update(page)
        total = int(info.get("total", 0))
        offset += len(page)
        if not page or len(page) < _SUBJECTS_PAGE or (total and offset >= total):
            return counts


async def purge(store: EventStore, subject: str, before: int | None = None) -> int:
    """Remove the messages on `subject` (a wildcard too) below sequence `before`, or all."""
    body: dict[str, Any] = {"filter": subject}
    if before is not None:
        body["seq"] = before
    answer = await _api(store, f"STREAM.PURGE.{store.stream}", body)
    return int(answer.get("purged", 0))


async def _bounded(calls: Iterable[Callable[[], Awaitable[int]]]) -> int:
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def one(call: Callable[[], Awaitable[int]]) -> int:
        async with gate:
            return await call()

    return sum(await asyncio.gather(*(one(call) for call in calls)))


async def compact_cluster_events(store: EventStore, through: int, after: int = 0) -> Compacted:
    """Purge cluster events at or below `through`, never a subject's last message, given
    that a pass through `after` finished before (0: none did; the whole log is read).

    Only the subjects with messages in (`after`, `through`] have anything to remove: the
    messages there but the newest of each, and the one each kept at or below `after`. They
    go oldest first, one purge each (see the module's cost model)."""
    # Reports a log written before the telemetry stream still holds: nobody's scope, and
    # replaced by the stream's, so they go whole (up to the cut), before the range is read
    # (an old log holds millions of them: not worth listing one by one).
    legacy = [
        subject for reports in LEGACY_REPORTS for subject in await subject_counts(store, reports)
    ]
    purged = await _bounded(_drop(store, subject, through) for subject in legacy)
    try:
        found = await seqs_by_subject(store, ALL_CLUSTER_EVENTS, after, through)
    except RangeReadStalled as exc:
        raise CompactionError(str(exc)) from exc

    def trim(subject: str, seqs: list[int]) -> Callable[[], Awaitable[int]]:
        async def call() -> int:
            # First whatever is below the range (the one message the previous pass kept),
            # then each message in the range up to and including itself: the newest stays,
            # even when a later one (after the cut) makes it removable; the next pass takes
            # it, since that later one falls in its range. Bounding each purge just above
            # the message it removes spares the server a walk to the subject's next message.
            removed = await purge(store, subject, before=seqs[0])
            for seq in seqs[:-1]:
                removed += await purge(store, subject, before=seq + 1)
            return removed

        return call

    purged += await _bounded(trim(subject, seqs) for subject, seqs in found.items())
    return Compacted(through, len(legacy) + len(found), purged)


def _drop(store: EventStore, subject: str, through: int) -> Callable[[], Awaitable[int]]:
    return lambda: purge(store, subject, before=through + 1)


async def purge_requests(
    store: EventStore, histories: Mapping[str, Mapping[str, Sequence[int]]]
) -> int:
    """Remove the whole history of each request (retention; only for expired ones), given
    the sequences of its events by type: one purge per exact subject, since a purge by a
    wildcard filter visits every subject of the stream (measured: 20 requests/s against
    2,700 exact purges/s with 60,000 subjects). A subject holding several events (a request
    claimed again after a retry) loses them one purge each, oldest first, so that no purge
    removes more than one (see the cost model above); the last purge has no bound, so
    whatever the caller did not know of goes too."""

    def remove(subject: str, seqs: Sequence[int]) -> Callable[[], Awaitable[int]]:
        async def call() -> int:
            removed = 0
            for seq in sorted(seqs)[:-1]:
                removed += await purge(store, subject, before=seq + 1)
            return removed + await purge(store, subject)

        return call

    return await _bounded(
        remove(request_subject(request_id, kind), seqs)
        for request_id, kinds in histories.items()
        for kind, seqs in kinds.items()
    )
