"""gsch workers and binders as real child processes, and the checks of a run from the log
alone, for end-to-end and fault tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats

from gsch.audit import AuditReport, audit
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import StreamsError, apply_declarations, load_declarations
from gsch.runtime.embedded import free_port
from gsch.runtime.procs import ChildProcess, serve_args

# Short leases so a killed worker's requests come back within seconds.
FAST_ENV = {
    "GSCH_QUEUE__LEASE_SECONDS": "3",
    "GSCH_QUEUE__BACKOFF_BASE": "0.1",
    "GSCH_QUEUE__BACKOFF_MAX": "1",
    "GSCH_SIMULATOR__BIND_DELAY": "0.005",
    "GSCH_LOG_LEVEL": "WARNING",
    # Housekeepers snapshot the cluster state and compact the log every second: compaction
    # runs under every test that starts one.
    "GSCH_SNAPSHOTS__INTERVAL": "1",
}


class Fleet:
    def __init__(self, root: Path, nats_url: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.nats_url = nats_url
        self.env = {**FAST_ENV, **(env or {})}
        self.workers: list[ChildProcess] = []
        self.binders: list[ChildProcess] = []
        self.housekeepers: list[ChildProcess] = []

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

    async def start_housekeeper(self) -> ChildProcess:
        """A housekeeper process (with its own read model, for retention): it snapshots and
        compacts the log every second."""
        name = f"housekeeper-{len(self.housekeepers)}"
        child = self._child("housekeeper", name, ["--metrics-listen", f"127.0.0.1:{free_port()}"])
        await child.start()
        self.housekeepers.append(child)
        return child

    async def stop(self) -> None:
        for child in [*self.workers, *self.binders, *self.housekeepers]:
            await child.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


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


async def declare_r3(urls: str, lease_seconds: float, timeout: float = 60.0) -> None:
    """Apply the declarations with three replicas once JetStream has a meta leader."""
    nc = await nats.connect(urls.split(","))
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    declarations = load_declarations(replicas=3, lease_seconds=lease_seconds)
                    await apply_declarations(nc, declarations)
                    return
                except (StreamsError, nats.errors.Error):
                    await asyncio.sleep(0.5)  # no meta leader elected yet
    finally:
        await nc.close()
