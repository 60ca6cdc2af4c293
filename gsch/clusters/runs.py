"""The clock of simulated workloads: each runs on its node for a while, then takes its turns
on shared resources (first come, first served, one workload at a time on each), and is done.
Seconds here are real seconds on the event loop; the simulator scales modelled ones."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from gsch.clusters.durations import Run


class _Shared:
    """One resource every workload queues for (e.g. the master's GPU)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self._loop = loop
        self._waiting: deque[tuple[str, float, Callable[[], None]]] = deque()
        self._serving: tuple[str, asyncio.TimerHandle] | None = None

    def enter(self, request_id: str, seconds: float, then: Callable[[], None]) -> None:
        self._waiting.append((request_id, seconds, then))
        self._next()

    def leave(self, request_id: str) -> None:
        """A cancelled workload gives up its place, or its turn."""
        self._waiting = deque(w for w in self._waiting if w[0] != request_id)
        if self._serving is not None and self._serving[0] == request_id:
            self._serving[1].cancel()
            self._serving = None
            self._next()

    def close(self) -> None:
        if self._serving is not None:
            self._serving[1].cancel()
        self._serving = None
        self._waiting.clear()

    def _next(self) -> None:
        if self._serving is not None or not self._waiting:
            return
        request_id, seconds, then = self._waiting.popleft()

        def done() -> None:
            self._serving = None
            then()
            self._next()

        self._serving = (request_id, self._loop.call_later(seconds, done))

    @property
    def queued(self) -> int:
        return len(self._waiting) + (self._serving is not None)


class WorkloadRuns:
    """Runs in progress; `finished(request_id)` is called when one is done."""

    def __init__(self, finished: Callable[[str], None]) -> None:
        self._finished = finished
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._turns: dict[str, _Shared] = {}  # request -> the resource it waits for or uses
        self._shared: dict[str, _Shared] = {}

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._timers or request_id in self._turns

    def start(self, request_id: str, run: Run) -> None:
        """Start a run (a run already going for the request is left as it is)."""
        if request_id in self:
            return
        loop = asyncio.get_running_loop()
        self._timers[request_id] = loop.call_later(
            run.node_seconds, self._turn, request_id, run.shared
        )

    def _turn(self, request_id: str, turns: tuple[tuple[str, float], ...]) -> None:
        self._timers.pop(request_id, None)
        self._turns.pop(request_id, None)
        if not turns:
            self._finished(request_id)
            return
        (name, seconds), rest = turns[0], turns[1:]
        shared = self._shared.get(name)
        if shared is None:
            shared = self._shared[name] = _Shared(name, asyncio.get_running_loop())
        self._turns[request_id] = shared
        shared.enter(request_id, seconds, lambda: self._turn(request_id, rest))

    def cancel(self, request_id: str) -> None:
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()
        shared = self._turns.pop(request_id, None)
        if shared is not None:
            shared.leave(request_id)

    def queued(self, name: str) -> int:
        """Workloads waiting for or using a shared resource."""
        shared = self._shared.get(name)
        return shared.queued if shared is not None else 0

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for shared in self._shared.values():
            shared.close()
        self._turns.clear()
