"""Messages the server received and delivered over a load, in all and per process: read from
the embedded server's monitoring endpoint (`/varz`, `/connz`) before and after the load, so a
benchmark can say how many messages one placement costs and who receives them.

Every message counts, whatever it is: events, their acknowledgements and replies, pull
requests, flow control and heartbeats. A connection is attributed to its process by the pid
at the end of its name (`gsch-<roles>-<host>-<pid>:<role>`, as `runtime/bus.py` names them).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Counts:
    """Messages a server received from clients and delivered to them."""

    received: int = 0  # published to the server (in_msgs)
    delivered: int = 0  # sent by the server to its clients (out_msgs)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.received - other.received, self.delivered - other.delivered)


@dataclass(frozen=True)
class TrafficSample:
    server: Counts = Counts()
    by_pid: dict[int, Counts] = field(default_factory=dict)


def pid_of(connection_name: str) -> int | None:
    """The pid a gsch process puts at the end of its connections' names, if any."""
    head = connection_name.split(":", 1)[0]
    _, _, tail = head.rpartition("-")
    return int(tail) if tail.isdigit() else None


def sample_of(varz: dict[str, Any], connz: dict[str, Any]) -> TrafficSample:
    server = Counts(int(varz.get("in_msgs", 0)), int(varz.get("out_msgs", 0)))
    by_pid: dict[int, Counts] = {}
    for connection in connz.get("connections") or ():
        pid = pid_of(str(connection.get("name", "")))
        if pid is None:
            continue
        # The server's view: what a client sends is the server's in_msgs for it.
        counted = Counts(int(connection.get("in_msgs", 0)), int(connection.get("out_msgs", 0)))
        previous = by_pid.get(pid, Counts())
        by_pid[pid] = Counts(
            previous.received + counted.received, previous.delivered + counted.delivered
        )
    return TrafficSample(server, by_pid)


class TrafficMeter:
    """Message counts over a window, from a server's monitoring URL (None: not measured)."""

    def __init__(self, monitor_url: str | None, pids: dict[str, int]) -> None:
        self.monitor_url = monitor_url
        self.pids = pids
        self._started: TrafficSample | None = None

    async def _sample(self) -> TrafficSample | None:
        if self.monitor_url is None:
            return None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                async with session.get(f"{self.monitor_url}/varz") as response:
                    varz = await response.json()
                async with session.get(f"{self.monitor_url}/connz?limit=4096") as response:
                    connz = await response.json()
            return sample_of(varz, connz)
        return None

    async def start(self) -> None:
        self._started = await self._sample()

    async def report(self, placements: int) -> dict[str, Any] | None:
        """Messages per placement since `start`: the server's totals and, per process, what
        it sent (`sent`) and what the server delivered to it (`received`)."""
        ended = await self._sample()
        if self._started is None or ended is None:
            return None
        placed = max(1, placements)
        total = ended.server - self._started.server
        per_process: dict[str, dict[str, float]] = {}
        for name, pid in self.pids.items():
            if pid not in ended.by_pid:
                continue
            spent = ended.by_pid[pid] - self._started.by_pid.get(pid, Counts())
            per_process[name] = {
                "sent": round(spent.received / placed, 2),
                "received": round(spent.delivered / placed, 2),
            }
        return {
            "server_received": round(total.received / placed, 2),
            "server_delivered": round(total.delivered / placed, 2),
            "by_process": per_process,
        }
