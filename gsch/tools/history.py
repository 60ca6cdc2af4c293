"""A realistic history, written fast: a fleet whose agents report latency every tick (10 s of
simulated time), pods now and then, and requests living their lifecycles — accepted, claimed,
committed with a reservation, bound, finished with the capacity released, some rejected.

Every event is what gsch's own writers would append (same types and subjects, telemetry on
its own stream, reservations that fit their node), but written with pipelined unconditional
publishes (`eventstore/bulk.py`): a month of a fleet in minutes. Simulated time starts
`days` before now, so retention sees requests that ended long ago.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gsch.eventstore.appends import Write
from gsch.eventstore.bulk import bulk_append
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ClusterKey, LatencyKey, NodeKey, PodsKey, RequestKey
from gsch.model.events import (
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    Event,
    Explanation,
    LatencyReported,
    NodeDeclared,
    Placement,
    PlacementCommitted,
    PodsReported,
    RequestAccepted,
    RequestBound,
    RequestClaimed,
    RequestRejected,
    WorkloadFinished,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources

TICK = 10.0  # simulated seconds between latency rounds (the probe's default interval)
GI = 2**30
DEMAND = Resources(cpu_m=250, memory=GI // 2, gpu=0, pods=1)
ALLOCATABLE = Resources(cpu_m=16000, memory=64 * GI, gpu=0, pods=110)
_FLUSH_EVERY = 20_000  # events per bulk append


@dataclass
class HistoryShape:
    clusters: int = 100
    nodes_per_cluster: int = 10
    placements_per_tick: int = 20  # new requests per tick
    lifetime_ticks: int = 30  # how long a bound workload runs
    reject_share: float = 0.05
    pods_share: float = 0.02  # nodes that report their pods in a tick
    days: float = 14.0  # simulated time ends about now, starting this long ago


@dataclass
class _Node:
    cluster: str
    name: str
    free: Resources = ALLOCATABLE


@dataclass
class HistoryGenerator:
    store: EventStore
    shape: HistoryShape
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    written: int = 0
    requests: int = 0
    _nodes: list[_Node] = field(default_factory=list)
    _running: deque[tuple[int, str, _Node]] = field(default_factory=deque)
    _tick: int = 0
    _clock: float = 0.0

    @property
    def clock(self) -> float:
        """The simulated time the history has reached."""
        return self._clock

    @property
    def events_per_tick(self) -> int:
        """About how many events one tick writes (telemetry and lifecycles)."""
        nodes = self.shape.clusters * self.shape.nodes_per_cluster
        return nodes + self.shape.placements_per_tick * 7

    async def run(self, events: int, progress: Callable[[int], None] | None = None) -> int:
        """Write at least `events` events (the fleet first); returns how many were written."""
        if not self._nodes:
            await self._declare_fleet()
        pending: list[Write] = []
        queued = 0
        while self.written + queued < events:
            tick = self._one_tick()
            pending += tick
            queued += sum(len(w.events) for w in tick)
            if queued >= _FLUSH_EVERY:
                await self._write(pending)
                pending, queued = [], 0
                if progress is not None:
                    progress(self.written)
        await self._write(pending)
        return self.written

    async def _write(self, writes: list[Write]) -> None:
        if writes:
            self.written += await bulk_append(self.store, writes)

    async def _declare_fleet(self) -> None:
        shape = self.shape
        ticks_needed = shape.days * 86400 / TICK
        self._clock = time.time() - ticks_needed * TICK
        writes: list[Write] = []
        tiers = ("cloud", "edge", "near-edge")
        for c in range(shape.clusters):
            cluster = f"gen-{c:04d}"
            tier = tiers[c % 3]
            writes.append(Write(ClusterKey(cluster), (ClusterDeclared(
                at=self._clock, cluster=cluster, tier=tier, labels={"tier": tier},
            ),)))  # fmt: skip
            for n in range(shape.nodes_per_cluster):
                node = _Node(cluster, f"{cluster}-w{n}")
                self._nodes.append(node)
                writes.append(Write(NodeKey(cluster, node.name), (NodeDeclared(
                    at=self._clock, cluster=cluster, node=node.name, allocatable=ALLOCATABLE,
                    labels={"kubernetes.io/hostname": node.name},
                ),)))  # fmt: skip
        await self._write(writes)

    def _one_tick(self) -> list[Write]:
        self._tick += 1
        self._clock += TICK
        writes = self._telemetry()
        writes += self._finish_due()
        for _ in range(self.shape.placements_per_tick):
            writes += self._lifecycle()
        return writes

    def _telemetry(self) -> list[Write]:
        writes = []
        names = [f"gen-{c:04d}" for c in range(self.shape.clusters)]
        random = self.rng.random
        for index, node in enumerate(self._nodes):
            # Each node probes the same few clusters every round; the round trips vary.
            targets = [names[(index + k * 7) % len(names)] for k in range(min(8, len(names)))]
            writes.append(Write(LatencyKey(node.cluster, node.name), (LatencyReported(
                at=self._clock, cluster=node.cluster, node=node.name,
                to_clusters={t: round(0.5 + 80 * random(), 2) for t in targets},
            ),)))  # fmt: skip
            if self.rng.random() < self.shape.pods_share:
                pods = tuple(f"ns/p{self.rng.randrange(50)}" for _ in range(3))
                writes.append(Write(PodsKey(node.cluster, node.name), (PodsReported(
                    at=self._clock, cluster=node.cluster, node=node.name, pods=pods,
                ),)))  # fmt: skip
        return writes

    def _lifecycle(self) -> list[Write]:
        self.requests += 1
        request_id = f"hist-{self.requests:09d}"
        key = RequestKey(request_id)
        at = self._clock + self.rng.random() * TICK
        if self.rng.random() < self.shape.reject_share:
            rejected = RequestRejected(
                at=at, request_id=request_id, field="workload",
                reason="workload.kind: 'Foo' is not an allowed kind",
            )  # fmt: skip
            return [Write(key, (rejected,))]
        node = self.rng.choice(self._nodes)
        if not DEMAND.fits_in(node.free):
            return []  # full: a real request would wait, here it is simply not generated
        node.free = node.free - DEMAND
        request = Request(
            request_id=request_id, policy=Policy.MOST_REQUESTED, mode="default",
            levels=((node.cluster,),), user_name="u1", workspace_name="w1",
            project_name="p1", demand=DEMAND,
        )  # fmt: skip
        placement = Placement(node.cluster, node.name, DEMAND)
        events: tuple[Event, ...] = (
            RequestAccepted(at=at, request=request, intake_seq=self.requests,
                            level=QueueLevel.BASE),
            RequestClaimed(at=at, attempt=1, worker="history"),
            PlacementCommitted(
                at=at, attempt=1, placements=(placement,), level_index=0, worker="history",
                explanation=Explanation(summary=f"placed on {node.cluster}/{node.name}"),
            ),
            RequestBound(at=at + 0.05, attempt=1, placements=(placement,)),
        )  # fmt: skip
        reserved = CapacityReserved(
            at=at, cluster=node.cluster, node=node.name, request_id=request_id, attempt=1,
            amount=DEMAND,
        )  # fmt: skip
        self._running.append((self._tick + self.shape.lifetime_ticks, request_id, node))
        return [Write(key, events[:3]), Write(NodeKey(node.cluster, node.name), (reserved,)),
                Write(key, events[3:])]  # fmt: skip

    def _finish_due(self) -> list[Write]:
        writes = []
        while self._running and self._running[0][0] <= self._tick:
            _, request_id, node = self._running.popleft()
            node.free = node.free + DEMAND
            at = self._clock
            writes.append(Write(RequestKey(request_id), (WorkloadFinished(at=at, attempt=1),)))
            writes.append(Write(NodeKey(node.cluster, node.name), (CapacityReleased(
                at=at, cluster=node.cluster, node=node.name, request_id=request_id,
                attempt=1, reason="workload finished",
            ),)))  # fmt: skip
        return writes
