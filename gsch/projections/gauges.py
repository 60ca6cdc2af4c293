"""Gauges read from the read model: queue depth per level and capacity per member cluster.

They describe the fleet as the log has it, so any API process can export them, the same
numbers `/v1/queues` and `/v1/clusters` answer. Refreshed on a timer from one read snapshot;
a cluster that disappears from the model loses its series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import Gauge

from gsch.metrics import CLUSTER_ALLOCATABLE, CLUSTER_READY, CLUSTER_RESERVED, PENDING_REQUESTS
from gsch.projections.reader import ReadModel, ReadModelUnavailableError
from gsch.projections.views import Amount, ClusterSummary, QueueList

log = logging.getLogger(__name__)

# (resource, unit, value in that unit)
_RESOURCES: tuple[tuple[str, str, Callable[[Amount], float]], ...] = (
    ("cpu", "core", lambda a: a.cpu_m / 1000),
    ("memory", "byte", lambda a: float(a.memory)),
    ("nvidia_com_gpu", "integer", lambda a: float(a.gpu)),
    ("pods", "integer", lambda a: float(a.pods)),
)


class ReadModelGauges:
    def __init__(self, reader: ReadModel) -> None:
        self._reader = reader
        self._clusters: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        async with self._reader.snapshot() as snapshot:
            queues = await snapshot.queues()
            clusters = await snapshot.clusters()
        self._set_queues(queues)
        self._set_clusters(clusters.items)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except ReadModelUnavailableError as exc:
                log.debug("read model not open yet", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    def _set_queues(self, queues: QueueList) -> None:
        blocked = 0
        for queue in queues.items:
            waiting = queue.queued - queue.blocked + queue.scheduling
            PENDING_REQUESTS.labels(queue=queue.level).set(waiting)
            blocked += queue.blocked
        PENDING_REQUESTS.labels(queue="blocked").set(blocked)

    def _set_clusters(self, clusters: tuple[ClusterSummary, ...]) -> None:
        present: set[tuple[str, str]] = set()
        for cluster in clusters:
            key = (cluster.name, cluster.tier or "unknown")
            present.add(key)
            CLUSTER_READY.labels(*key).set(1.0 if cluster.ready else 0.0)
            _set_amounts(CLUSTER_ALLOCATABLE, key, cluster.allocatable)
            _set_amounts(CLUSTER_RESERVED, key, cluster.reserved)
        for key in self._clusters - present:
            CLUSTER_READY.remove(*key)
            for resource, unit, _ in _RESOURCES:
                CLUSTER_ALLOCATABLE.remove(*key, resource, unit)
                CLUSTER_RESERVED.remove(*key, resource, unit)
        self._clusters = present


def _set_amounts(gauge: Gauge, key: tuple[str, str], amount: Amount) -> None:
    for resource, unit, value in _RESOURCES:
        gauge.labels(*key, resource, unit).set(value(amount))
