"""Processes for end-to-end tests: gsch workers and binders as real child processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client

from gsch.audit import AuditReport, audit
from gsch.client import publish_request
from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.store import EventStore
from gsch.procs import ChildProcess, serve_args

# Short leases so a killed worker's requests come back within seconds.
FAST_ENV = {
    "GSCH_QUEUE__LEASE_SECONDS": "3",
    "GSCH_QUEUE__BACKOFF_BASE": "0.1",
    "GSCH_QUEUE__BACKOFF_MAX": "1",
    "GSCH_SIMULATOR__BIND_DELAY": "0.005",
    "GSCH_LOG_LEVEL": "WARNING",
}


class Fleet:
    def __init__(self, root: Path, nats_url: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.nats_url = nats_url
        self.env = {**FAST_ENV, **(env or {})}
        self.workers: list[ChildProcess] = []
        self.binders: list[ChildProcess] = []

    def _child(self, roles: str, name: str, extra: list[str]) -> ChildProcess:
        args = serve_args(roles, self.nats_url, self.root / name, extra)
        return ChildProcess(args, self.root / f"{name}.log", self.env)

    async def start_binder(
        self, generated: str = "20x10", topology: Path | None = None
    ) -> ChildProcess:
        source = ["--topology", str(topology)] if topology else ["--generated-topology", generated]
        binder = self._child("binder", f"binder-{len(self.binders)}", source)
        await binder.start()
        self.binders.append(binder)
        return binder

    async def start_worker(self) -> ChildProcess:
        worker = self._child("worker", f"worker-{len(self.workers)}", [])
        await worker.start()
        self.workers.append(worker)
        return worker

    async def stop(self) -> None:
        for child in [*self.workers, *self.binders]:
            await child.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


def pod_request(request_id: str, levels: list[Any], cpu: str = "100m", **fields: Any) -> bytes:
    """A one-pod request; `fields` add or replace top-level request fields."""
    return msgspec.json.encode(
        {
            "request_id": request_id,
            "policy": "GMostRequestedPriority",
            "select_clusters": levels,
            "workload": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": request_id},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                        }
                    ]
                },
            },
            **fields,
        }
    )


def generated_levels(index: int, clusters: int = 20) -> list[Any]:
    """Levels over the clusters of `generated_topology(clusters, ...)`, varying per request."""
    names = [f"{tier}-{i:05d}" for i, tier in enumerate(_tiers(clusters))]
    first = names[index % clusters]
    second = names[(index * 7 + 3) % clusters]
    third = names[(index * 13 + 5) % clusters]
    return [[first, second], third] if third not in (first, second) else [[first, second]]


def _tiers(clusters: int) -> list[str]:
    out = []
    for index in range(clusters):
        share = index / clusters
        out.append("cloud" if share < 0.1 else "edge" if share < 0.4 else "near-edge")
    return out


async def wait_inventory(store: EventStore, nodes: int, timeout: float = 60.0) -> None:
    """Wait until the binder has declared `nodes` nodes (requests naming undeclared clusters
    are retried and then fail, as they should, so tests start once the fleet is known)."""
    feed = SnapshotFeed(store)
    snapshot = await feed.start()
    try:
        async with asyncio.timeout(timeout):
            while sum(len(c.nodes) for c in snapshot.clusters.values()) < nodes:
                await asyncio.sleep(0.05)
    finally:
        await feed.stop()


async def publish_all(nc: Client, bodies: list[tuple[str, bytes]]) -> None:
    for request_id, body in bodies:
        await publish_request(nc, body, request_id)


def assert_sound(report: AuditReport, expected: int, fleet: Fleet) -> None:
    """Every request terminal, none placed twice, no node over its allocatable, nothing left
    reserved by a final request: the invariants, from the log alone."""
    assert len(report.requests) == expected, fleet.logs()
    assert report.unsettled == [], (report.summary(), fleet.logs())
    assert report.ok, report.summary()


async def wait_settled(store: EventStore, expected: int, timeout: float) -> AuditReport:
    """Audit the log until `expected` requests have settled or `timeout` passes."""
    deadline = time.monotonic() + timeout
    report = await audit(store)
    while time.monotonic() < deadline:
        if len(report.requests) >= expected and not report.unsettled:
            return report
        await asyncio.sleep(1.0)
        report = await audit(store)
    return report
