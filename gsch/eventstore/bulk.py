"""Bulk loads for the history generator: unconditional, non-atomic appends, pipelined.

Every event goes out in order as a plain publish, the connection is flushed every `window`,
then each stream the events went to (the log, the telemetry stream) is checked to have
grown by exactly what was sent to it: a refused message would show as a shortfall. No
message ids: a bulk load is not retried, and millions of ids would only fill the server's
de-duplication window. Only for streams nobody else writes to, or removes the newest
message of, meanwhile (the newest message tells how far a stream got).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import nats.js.errors

from gsch.eventstore.appends import Write
from gsch.eventstore.store import EventStore, StoreError
from gsch.eventstore.subjects import (
    ALL_EVENTS,
    ALL_TELEMETRY,
    EVENTS_STREAM,
    TELEMETRY_STREAM,
    stream_of,
)

_EVERYTHING = {EVENTS_STREAM: ALL_EVENTS, TELEMETRY_STREAM: ALL_TELEMETRY}


async def _last_seqs(store: EventStore, streams: Sequence[str]) -> dict[str, int]:
    """Each stream's newest sequence, by a direct get of its last message: STREAM.INFO
    counts the removed messages too, and on a stream replacing values fast that took the
    server up to a minute (measured on the telemetry stream after 2M reports)."""
    newest = {}
    for stream in streams:
        try:
            raw = await store.js.get_last_msg(stream, _EVERYTHING[stream], direct=True)
        except nats.js.errors.NotFoundError:
            newest[stream] = 0
        else:
            newest[stream] = int(raw.seq or 0)
    return newest


async def bulk_append(store: EventStore, writes: Sequence[Write], window: int = 5000) -> int:
    """Append every event of `writes`; returns how many were appended."""
    items = [item for write in writes for item in write.appends()]
    sent = Counter(stream_of(item.subject) for item in items)
    before = await _last_seqs(store, list(sent))
    for start in range(0, len(items), window):
        for item in items[start : start + window]:
            await store.nc.publish(item.subject, item.data)
        await store.nc.flush(timeout=int(store.give_up_after))
    # The server stores what it received a little after it acknowledges the flush: wait
    # (bounded) for every stream to have grown by what was sent to it.
    deadline = time.monotonic() + store.give_up_after
    while True:
        grown = {s: last - before[s] for s, last in (await _last_seqs(store, list(sent))).items()}
        if all(grown[stream] >= count for stream, count in sent.items()):
            break
        if time.monotonic() > deadline:
            raise StoreError(f"bulk append: sent {dict(sent)}, the streams grew by {grown}")
        await asyncio.sleep(0.005)
    if grown != dict(sent):
        raise StoreError(f"bulk append: sent {dict(sent)}, the streams grew by {grown}")
    for item in items:
        store.count_append(type(item.event))
    return len(items)
