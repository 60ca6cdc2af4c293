"""Retention while a history is written, as the housekeeper applies it all along: the read
model it reads candidates from, projected in the same process, and a pass every eighth of
the window of simulated time.

Without it a history of 10M events keeps ten times the requests of one of 1M, and the
read model an API restarts on grows with the age of the installation, which retention
exists to prevent. With it both keep the requests of one window (plus the expiry records
of the current day, which `retention.expired_ids` removes a day at a time).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.housekeeping.retention import Retention
from gsch.projections.projector import Projector
from gsch.runtime.config import RetentionConfig
from gsch.tools.history import TICK, HistoryGenerator

PASSES_PER_WINDOW = 8


@dataclass
class HistoryRetention:
    """Retention of `window` simulated seconds over `generator`'s history."""

    store: EventStore
    snapshots: SnapshotStore
    generator: HistoryGenerator
    db: Path
    window: float
    expired: int = 0
    _projector: Projector | None = None
    _projecting: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def every_events(self) -> int:
        """Events between passes: an eighth of the window of simulated time."""
        ticks = max(1, int(self.window / PASSES_PER_WINDOW / TICK))
        return ticks * self.generator.events_per_tick

    async def start(self) -> None:
        self._projector = Projector(self.store, self.db, self.snapshots)
        await self._projector.open()
        self._projecting = asyncio.create_task(self._projector.run(self._stop))

    async def run_once(self) -> None:
        """Catch the read model up with the log, then expire what ended a window ago."""
        assert self._projector is not None, "start() first"
        if not await self._projector.wait_for(await self.store.newest_seq(), 600):
            raise TimeoutError("the read model did not catch up with the log in 600 s")
        config = RetentionConfig(
            finished_requests=self.window, expired_ids=self.window, batch=1_000_000
        )
        retention = Retention(config, self.store, self.db, clock=lambda: self.generator.clock)
        self.expired += (await retention.run_once()).expired

    async def stop(self) -> None:
        self._stop.set()
        if self._projecting is not None:
            await self._projecting
        if self._projector is not None:
            await self._projector.close()


async def advance(
    generator: HistoryGenerator, retention: HistoryRetention | None, events: int
) -> None:
    """Write the history up to `events` events, with a retention pass at every eighth of
    the window when `retention` is given."""
    while generator.written < events:
        step = events if retention is None else generator.written + retention.every_events
        await generator.run(min(events, step))
        if retention is not None:
            await retention.run_once()
