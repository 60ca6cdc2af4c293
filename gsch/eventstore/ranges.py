"""Which subjects the log holds in a range of sequences: a headers-only ordered read.

Compaction decides what to remove from the messages a range holds, not from the whole log,
so what it costs follows what it removes. The read asks the server for headers only (the
subject and position are in the delivery's subjects; bodies are not needed) through an
ephemeral ordered consumer, what every service role may create.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from gsch.eventstore.delivery import position_of
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import stream_of


class RangeReadStalled(Exception):
    """The server stopped delivering before the range was read to its end."""


class _Collector:
    """Collects (subject, sequence) pairs up to `through` from an ordered consumer."""

    def __init__(self, through: int) -> None:
        self.through = through
        self.found: dict[str, list[int]] = defaultdict(list)
        self.delivered = 0
        self.done = asyncio.Event()

    async def take(self, msg: Any) -> None:
        seq, _, _, pending = position_of(msg.reply)
        if seq > self.through:
            self.done.set()
            return
        self.delivered += 1
        seqs = self.found[msg.subject]
        if not seqs or seqs[-1] < seq:  # an ordered consumer reset may deliver again
            seqs.append(seq)
        if seq == self.through or not pending:
            self.done.set()


async def seqs_by_subject(
    store: EventStore, scope: str, after: int, through: int
) -> dict[str, list[int]]:
    """The sequences of the messages matching `scope` in (`after`, `through`], by subject,
    ascending. Raises RangeReadStalled when nothing arrives for the store's request timeout."""
    first = await store.first_after(scope, after)
    if first is None or first.seq > through:
        return {}
    collector = _Collector(through)
    subscription = await store.js.subscribe(
        scope,
        stream=stream_of(scope),
        cb=collector.take,
        ordered_consumer=True,
        idle_heartbeat=2.0,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first.seq,
            headers_only=True,
        ),
    )
    try:
        while not collector.done.is_set():
            before = collector.delivered
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(store.request_timeout):
                    await collector.done.wait()
            if not collector.done.is_set() and collector.delivered == before:
                raise RangeReadStalled(
                    f"reading {scope} in ({after}, {through}]: nothing delivered for"
                    f" {store.request_timeout} s"
                )
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
    return dict(collector.found)
