"""The latency probe: periodic TCP connect round trips from this node to every other cluster's
API endpoint and to this cluster's nodes, smoothed, published as `LatencyReported`.

TCP connect instead of ICMP (GEdge pinged): it needs no raw-socket privilege and measures the
path a workload's traffic takes. A refused connection still completes a round trip (the RST
came back), so it counts; a timeout does not. Each round takes `samples` connects per target;
the report carries the EWMA (what GLowLatencyPriority ranks on) and the p95 of the recent
window. A target not measured for `stale_after` seconds (gone, or unreachable) leaves the
report, so a policy never ranks on an old number. Nothing ever waits for a round: requests are
planned on whatever the log says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gsch.aio import pause
from gsch.clusters.facts import declare
from gsch.eventstore.store import EventStore, StoreError, StoreUnavailableError
from gsch.eventstore.subjects import LatencyKey
from gsch.model.events import LatencyReported
from gsch.runtime.config import ProbeConfig

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True)
class Targets:
    clusters: dict[str, Address] = field(default_factory=dict)
    nodes: dict[str, Address] = field(default_factory=dict)


@dataclass
class Series:
    """One target's smoothed round trip and its recent samples."""

    window: int
    ewma: float | None = None
    samples: deque[float] = field(default_factory=deque)
    measured_at: float = 0.0

    def add(self, rtts: list[float], alpha: float, now: float) -> None:
        for rtt in rtts:
            self.ewma = rtt if self.ewma is None else alpha * rtt + (1 - alpha) * self.ewma
            self.samples.append(rtt)
            while len(self.samples) > self.window:
                self.samples.popleft()
        if rtts:
            self.measured_at = now

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


async def connect_rtt(address: Address, timeout: float) -> float | None:
    """Milliseconds for one TCP connect (or refusal) to `address`; None when nothing came
    back in time."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(*address)
    except ConnectionRefusedError:
        return (time.perf_counter() - started) * 1000
    except (OSError, TimeoutError):
        return None
    elapsed = (time.perf_counter() - started) * 1000
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return elapsed


class LatencyProbe:
    def __init__(
        self,
        store: EventStore,
        cluster: str,
        node: str,
        settings: ProbeConfig,
        targets: Callable[[], Targets],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.node = node
        self.settings = settings
        self.targets = targets
        self.clock = clock
        self.series: dict[tuple[str, str], Series] = {}  # ("cluster"|"node", name)

    async def _sample(self, address: Address) -> list[float]:
        rtts = []
        for _ in range(self.settings.samples):
            rtt = await connect_rtt(address, self.settings.timeout)
            if rtt is not None:
                rtts.append(rtt)
        return rtts

    async def measure(self) -> None:
        """One round over every current target, concurrently."""
        targets = self.targets()
        wanted = [("cluster", n, a) for n, a in targets.clusters.items() if n != self.cluster]
        wanted += [("node", n, a) for n, a in targets.nodes.items() if n != self.node]
        results = await asyncio.gather(*(self._sample(address) for _, _, address in wanted))
        now = self.clock()
        for (kind, name, _), rtts in zip(wanted, results, strict=True):
            series = self.series.setdefault((kind, name), Series(self.settings.window))
            series.add(rtts, self.settings.alpha, now)

    def report(self) -> LatencyReported:
        """The current measurements, stale targets dropped (and forgotten)."""
        now = self.clock()
        for key, series in list(self.series.items()):
            if now - series.measured_at > self.settings.stale_after:
                del self.series[key]
        fresh = {k: s for k, s in self.series.items() if s.ewma is not None}

        def pick(kind: str, p95: bool) -> dict[str, float]:
            return {
                name: round(series.p95 if p95 else series.ewma or 0.0, 3)
                for (k, name), series in fresh.items()
                if k == kind
            }

        # A node is 0 ms from itself: a workload next to its source lands on it.
        to_nodes = {self.node: 0.0, **pick("node", False)}
        return LatencyReported(
            at=time.time(), cluster=self.cluster, node=self.node,
            to_clusters=pick("cluster", False), to_nodes=to_nodes,
            to_clusters_p95=pick("cluster", True), to_nodes_p95=pick("node", True),
        )  # fmt: skip

    async def publish(self) -> None:
        await declare(self.store, LatencyKey(self.cluster, self.node), self.report())

    async def run(self) -> None:
        """Measure and publish every `interval` seconds until cancelled."""
        while True:
            await self.measure()
            try:
                await self.publish()
            except (StoreError, StoreUnavailableError) as exc:  # the next round reports again
                log.warning("latency not reported", extra={"cluster": self.cluster,
                                                           "error": str(exc)})  # fmt: skip
            await pause(self.settings.interval)
