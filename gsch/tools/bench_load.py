"""The load a benchmark offers and what it observes: requests published all at once (closed
loop: throughput) or at a fixed rate (open loop: latency under steady load), and the moments
each request was published, scheduled and bound, from which the figures are computed.

Publish times are the benchmark's clock just before each publish; scheduled and bound times
are when the server stored the PlacementCommitted and RequestBound events (the stream's
timestamps, same machine, same clock), so a latency includes the commit's own round trip.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gsch.eventstore.intake import intake_headers
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import INTAKE_SUBJECT, request_events_of_type
from gsch.eventstore.watch import Follower
from gsch.model.events import PlacementCommitted, RequestBound
from gsch.model.ids import numbered_request_id
from gsch.tools.bench_system import WINDOW


@dataclass(frozen=True)
class Workload:
    """What every request asks for."""

    clusters: tuple[str, ...]
    policy: str = "GMostRequestedPriority"
    levels: int = 3

    def requests(self, series: str, count: int, seed: int = 1) -> list[tuple[str, bytes]]:
        """`count` requests of `series`: each names `levels` levels of two clusters drawn at
        random (the same draw for the same seed)."""
        chooser = random.Random(f"{seed}/{series}")
        made = []
        for index in range(count):
            picked = chooser.sample(self.clusters, min(len(self.clusters), 2 * self.levels))
            levels = [picked[i : i + 2] for i in range(0, len(picked) - 1, 2)][: self.levels]
            request_id = numbered_request_id(series, index, digits=8)
            body = {
                "request_id": request_id,
                "policy": self.policy,
                "select_clusters": levels,
                "workload": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{series}-{index}"},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            }
            made.append((request_id, msgspec.json.encode(body)))
        return made


class Timeline:
    """When each request was published, scheduled (its first placement stored) and bound."""

    def __init__(self, store: EventStore) -> None:
        self.published: dict[str, float] = {}
        self.scheduled: dict[str, float] = {}
        self.bound: dict[str, float] = {}
        # Only the two events timed, each on a feed of its own: the others (acceptances carry
        # the whole workload) are never sent to the benchmark, whose CPU the system shares.
        self._followers = [
            Follower(store, request_events_of_type(kind.__name__), self._observe)
            for kind in (PlacementCommitted, RequestBound)
        ]

    def _observe(self, stored: StoredEvent) -> None:
        request_id = stored.request_id
        if request_id is None:
            return
        event = stored.event
        if isinstance(event, PlacementCommitted):
            self.scheduled.setdefault(request_id, stored.stored_at)
        elif isinstance(event, RequestBound):
            self.bound.setdefault(request_id, stored.stored_at)

    async def start(self, after_seq: int) -> None:
        for follower in self._followers:
            await follower.start(after_seq)

    async def stop(self) -> None:
        for follower in self._followers:
            await follower.stop()

    async def wait_settled(self, request_ids: Sequence[str], timeout: float) -> bool:
        """Wait until every request of `request_ids` is bound; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r in self.bound for r in request_ids):
                return True
            await asyncio.sleep(0.1)
        return False


async def publish_all(js: Any, requests: Sequence[tuple[str, bytes]], timeline: Timeline) -> None:
    """The closed loop: every request published as fast as pipelining allows."""
    for offset in range(0, len(requests), WINDOW):
        futures = []
        for request_id, body in requests[offset : offset + WINDOW]:
            timeline.published[request_id] = time.time()
            futures.append(
                await js.publish_async(
                    INTAKE_SUBJECT, body, headers=intake_headers(request_id, body)
                )
            )
        await asyncio.wait_for(asyncio.gather(*futures), 60)


async def publish_at_rate(
    js: Any, requests: Sequence[tuple[str, bytes]], rate: float, timeline: Timeline
) -> None:
    """The open loop: request i is published at start + i/rate, whatever happens to the
    earlier ones (a publisher that falls behind catches up at once, and the achieved rate
    says so). Acknowledgements are awaited aside, so they never hold the schedule."""
    started = time.monotonic()
    acks: list[asyncio.Future[Any]] = []
    for index, (request_id, body) in enumerate(requests):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        timeline.published[request_id] = time.time()
        acks.append(
            await js.publish_async(INTAKE_SUBJECT, body, headers=intake_headers(request_id, body))
        )
    await asyncio.wait_for(asyncio.gather(*acks), 60)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.5) - 1))]


def latency_ms(values: Iterable[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of latencies in seconds, as milliseconds."""
    found = list(values)
    if not found:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    shown = {f"p{int(s * 100)}": percentile(found, s) for s in (0.50, 0.95, 0.99)}
    shown["max"] = max(found)
    return {name: round(value * 1000, 1) for name, value in shown.items()}


@dataclass
class Observed:
    """The figures of one load: rates and latencies."""

    offered: int
    published_seconds: float
    scheduled: int
    bound: int
    first_publish: float
    last_scheduled: float
    to_scheduled: list[float] = field(default_factory=list)
    to_bound: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, timeline: Timeline, request_ids: Sequence[str]) -> Observed:
        published = [timeline.published[r] for r in request_ids if r in timeline.published]
        first = min(published, default=0.0)
        to_scheduled = [
            timeline.scheduled[r] - timeline.published[r]
            for r in request_ids
            if r in timeline.scheduled and r in timeline.published
        ]
        to_bound = [
            timeline.bound[r] - timeline.published[r]
            for r in request_ids
            if r in timeline.bound and r in timeline.published
        ]
        scheduled_at = [timeline.scheduled[r] for r in request_ids if r in timeline.scheduled]
        return cls(
            offered=len(request_ids),
            published_seconds=max(published, default=0.0) - first,
            scheduled=len(to_scheduled),
            bound=len(to_bound),
            first_publish=first,
            last_scheduled=max(scheduled_at, default=first),
            to_scheduled=to_scheduled,
            to_bound=to_bound,
        )

    @property
    def achieved_rate(self) -> float:
        """Requests published per second (the offered rate, if the publisher kept up)."""
        if self.offered < 2 or self.published_seconds <= 0:
            return 0.0
        return (self.offered - 1) / self.published_seconds

    @property
    def placements_per_second(self) -> float:
        """Placements from the first publish to the last commit."""
        elapsed = self.last_scheduled - self.first_publish
        return self.scheduled / elapsed if elapsed > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.offered,
            "scheduled": self.scheduled,
            "bound": self.bound,
            "achieved_publish_rate": round(self.achieved_rate, 1),
            "placements_per_second": round(self.placements_per_second, 1),
            "publish_to_scheduled_ms": latency_ms(self.to_scheduled),
            "publish_to_bound_ms": latency_ms(self.to_bound),
        }
