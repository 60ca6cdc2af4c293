"""GEdge's dispatch rounds over the three queue levels, per worker process.

A worker holds more messages than it runs at once; what waits is queued by level (First:
failed more than K* times; Fast: the user's flag; Base). Each round takes up to N* from First,
then up to 2·N* minus what First took from Fast, then the rest of 3·N* from Base: the unused
share of a level cascades down, exactly as GEdge's dispatcher fills its scheduling FIFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gsch.eventstore.consumers import Room, WorkItem
from gsch.model.request import QueueLevel

log = logging.getLogger(__name__)

LEVEL_ORDER = (QueueLevel.FIRST, QueueLevel.FAST, QueueLevel.BASE)
# Jobs started per turn of the event loop. An attempt's first step (decode, plan, hand to the
# group committer) runs without a pause, some 0.3 ms: starting hundreds at once would hold
# the loop for tens of milliseconds, while answers from the log and other workers'
# reservations wait unread (which lengthens every commit's round trip and the window in
# which two workers race for a node).
STARTS_PER_TURN = 32


def round_shares(waiting: Mapping[QueueLevel, int], per_level: int) -> dict[QueueLevel, int]:
    """How many to take from each level in one round of 3·N* (N* = `per_level`)."""
    shares: dict[QueueLevel, int] = {}
    budget = 0
    for level in LEVEL_ORDER:
        budget += per_level
        shares[level] = min(waiting.get(level, 0), budget)
        budget -= shares[level]
    return shares


@dataclass(frozen=True)
class Job:
    """A held message and what to do with it. `run` settles the item (ack, nak) or hands it
    on (parked as blocked); an item it neither settles nor hands on is released, so its lease
    lapses and another worker gets it."""

    item: WorkItem
    level: QueueLevel
    run: Callable[[], Awaitable[None]]


class LevelDispatcher:
    def __init__(
        self, per_level: int, max_running: int, room: Room, drain_seconds: float = 10.0
    ) -> None:
        self.per_level = max(1, per_level)
        self.max_running = max(1, max_running)
        self.room = room
        # How long a stop waits for running jobs: a shutdown must end within the lease, so
        # a job still running then is cancelled and its message handed back.
        self.drain_seconds = drain_seconds
        self.queues: dict[QueueLevel, deque[Job]] = {level: deque() for level in LEVEL_ORDER}
        self._round: deque[Job] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    def put(self, job: Job) -> None:
        """Queue a job; the caller has taken room for its item."""
        self.queues[job.level].append(job)
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch rounds until `stop`; then hand queued items back (another worker takes
        them at once instead of after the lease) and let running jobs finish, for at most
        `drain_seconds`: the rest are cancelled and their items handed back too."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                if not self._dispatch_round():
                    self._changed.clear()
                    changed = asyncio.create_task(self._changed.wait())
                    await asyncio.wait([changed, stopping], return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                else:
                    await asyncio.sleep(0)  # let the jobs just started take their first step
        finally:
            stopping.cancel()
            for queue in (self._round, *self.queues.values()):
                while queue:
                    job = queue.popleft()
                    await job.item.nak()
                    self.room.give()
            running = set(self._running)
            if running:
                _, late = await asyncio.wait(running, timeout=self.drain_seconds)
                for task in late:
                    task.cancel()
                if late:
                    log.warning("jobs cancelled at shutdown", extra={"jobs": len(late)})
                    await asyncio.gather(*late, return_exceptions=True)

    def _dispatch_round(self) -> bool:
        """Start jobs of the current round while running slots are free, taking the next
        round when it is used up; False if none started. The round is a FIFO of its own
        (GEdge's dispatched queue): a worker that can start one job at a time still serves the
        Fast and Base shares of a round before the next round's First share."""
        started = 0
        while len(self._running) < self.max_running and started < STARTS_PER_TURN:
            if not self._round:
                waiting = {level: len(queue) for level, queue in self.queues.items()}
                shares = round_shares(waiting, self.per_level)
                for level in LEVEL_ORDER:
                    queue = self.queues[level]
                    self._round.extend(queue.popleft() for _ in range(shares[level]))
                if not self._round:
                    break
            self._start(self._round.popleft())
            started += 1
        return started > 0

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._execute(job))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._changed.set()

    async def _execute(self, job: Job) -> None:
        try:
            await job.run()
        except asyncio.CancelledError:
            # Stopped before it ended (shutdown): whatever it appended is in the log, and the
            # next holder continues from there.
            await job.item.nak()
            raise
        except Exception:
            # A bug must not kill the dispatcher; the lease lapses and the message comes back.
            log.exception("job failed", extra={"subject": job.item.subject, "seq": job.item.seq})
            job.item.abandon()
        finally:
            self.room.give()
