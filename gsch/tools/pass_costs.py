"""What each pass of a housekeeping step costs in a bench: its wall time and the CPU the
nats-server spent meanwhile (read from /proc; the server does the work of a purge)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.housekeeping.housekeeper import compact
from gsch.tools.bench_system import process_cpu_seconds

T = TypeVar("T")


def cpu_seconds(pid: int | None) -> float:
    """CPU (user + system) a process has used so far; 0 where /proc cannot tell."""
    if pid is None:
        return 0.0
    try:
        return process_cpu_seconds(pid)
    except (OSError, IndexError):
        return 0.0


@dataclass
class PassCosts:
    server_pid: int | None
    seconds: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    async def timed(self, work: Awaitable[T]) -> T:
        start = self.start()
        result = await work
        self.record(start)
        return result

    def start(self) -> tuple[float, float]:
        """Where a pass starts: the server's CPU so far, and the time."""
        return cpu_seconds(self.server_pid), time.monotonic()

    def record(self, start: tuple[float, float]) -> None:
        """A pass that began at `start` has ended: its wall time and the server's CPU."""
        cpu, started = start
        self.seconds.append(time.monotonic() - started)
        self.server_cpu.append(cpu_seconds(self.server_pid) - cpu)

    def summary(self, prefix: str) -> dict[str, Any]:
        """Means over the first and the last tenth of the passes (growth shows as their
        difference), maxima, and events removed per pass."""
        if not self.seconds:
            return {}
        tenth = max(1, len(self.seconds) // 10)

        def mean(values: list[float]) -> float:
            return round(sum(values) / len(values), 2)

        summary = {
            f"{prefix}passes": len(self.seconds),
            f"{prefix}seconds_first_tenth": mean(self.seconds[:tenth]),
            f"{prefix}seconds_last_tenth": mean(self.seconds[-tenth:]),
            f"{prefix}seconds_max": round(max(self.seconds), 2),
            f"{prefix}server_cpu_first_tenth": mean(self.server_cpu[:tenth]),
            f"{prefix}server_cpu_last_tenth": mean(self.server_cpu[-tenth:]),
            f"{prefix}server_cpu_max": round(max(self.server_cpu), 2),
        }
        if self.removed:
            summary[f"{prefix}removed_per_pass"] = round(sum(self.removed) / len(self.removed))
        return summary


async def timed_compaction(costs: PassCosts, store: EventStore, snapshots: SnapshotStore) -> int:
    """Compact as the housekeeper does, timed; the events removed (0: skipped, and not
    counted as a pass)."""
    start = costs.start()
    done = await compact(store, snapshots)
    if done is None:
        return 0
    costs.record(start)
    costs.removed.append(done.purged)
    return done.purged
