"""Appending cluster facts (inventory, pods, latency) to the log.

Facts are stated, not decided: they carry no expectation on any history, because the source
(a simulator, an API server's watch, a probe) is the authority. A NodeDeclared does bump the
node's sequence, so a concurrent reservation on that node re-reads and re-plans; sources
therefore publish a fact only when it changed."""

from __future__ import annotations

from gsch.eventstore.store import EventStore, Write
from gsch.eventstore.subjects import EntityKey
from gsch.model.events import Event


async def declare(store: EventStore, key: EntityKey, event: Event) -> int:
    return (await store.append(Write(key, (event,))))[0]
