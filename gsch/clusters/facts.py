"""Appending cluster facts (inventory, pods, latency) to the log.

Facts are stated, not decided: they carry no expectation on any history, because the source
(a simulator, an API server's watch, a probe) is the authority. A NodeDeclared does bump the
node's sequence, so a concurrent reservation on that node re-reads and re-plans; sources
therefore publish a fact only when it changed."""

from __future__ import annotations

from gsch.eventstore.ids import new_msg_id
from gsch.eventstore.store import Append, EventStore
from gsch.metrics import EVENT_APPENDS
from gsch.model.events import Event


async def declare(store: EventStore, subject: str, event: Event) -> int:
    seq = await store.append(Append(subject, event, new_msg_id(subject, event)))
    EVENT_APPENDS.labels(type=type(event).__name__).inc()
    return seq
