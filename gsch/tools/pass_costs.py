"""What each pass of a housekeeping step costs in a bench: its wall time and the CPU the
nats-server spent meanwhile (read from /proc; the server does the work of a purge)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.housekeeping.housekeeper import compact

T = TypeVar("T")


def cpu_seconds(pid: int | None) -> float:
    """CPU (user + system) a process has used so far; 0 where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class PassCosts:
    server_pid: int | None
    seconds: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    async def timed(self, work: Awaitable[T]) -> T:
        cpu, started = cpu_seconds(self.server_pid), time.monotonic()
        result = await work
        self.seconds.append(time.monotonic() - started)
        self.server_cpu.append(cpu_seconds(self.server_pid) - cpu)
        return result

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
    cpu, started = cpu_seconds(costs.server_pid), time.monotonic()
    done = await compact(store, snapshots)
    if done is None:
        return 0
    costs.seconds.append(time.monotonic() - started)
    costs.server_cpu.append(cpu_seconds(costs.server_pid) - cpu)
    costs.removed.append(done.purged)
    return done.purged
