"""gsch's real pipeline for one test bed: an embedded nats-server, the binder with the
simulator (in this process), competing worker processes; and what becomes of each request
the experiment publishes, followed from the event log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client

from gsch.bus.roles import Role
from gsch.client import publish_request
from gsch.clusters.topology import Topology
from gsch.eventstore.store import StoredEvent
from gsch.eventstore.subjects import ALL_REQUEST_EVENTS
from gsch.eventstore.watch import Follower
from gsch.model.events import (
    RequestBound,
    RequestFailed,
    RequestRejected,
    RequestRequeued,
    WorkloadFinished,
)
from gsch.runtime.config import load_config
from gsch.runtime.connection import connect
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.runtime.service import Running, serve

# The workers retry within milliseconds: a retry's backoff is real time, and on the scaled
# clock half a second would be a minute of the modelled run.
WORKER_ENV = {
    "GSCH_QUEUE__BACKOFF_BASE": "0.01",
    "GSCH_QUEUE__BACKOFF_MAX": "0.05",
    "GSCH_LOG_LEVEL": "WARNING",
}


@dataclass
class Outcome:
    """One request's path, in wall-clock seconds (event times)."""

    published_at: float
    bound_at: float | None = None
    finished_at: float | None = None
    cluster: str | None = None
    waited: bool = False  # requeued at least once (waited for capacity, or retried)
    failed: str | None = None

    @property
    def done(self) -> bool:
        return self.finished_at is not None or self.failed is not None


class Pipeline:
    def __init__(
        self, topology: Topology, workers: int, data_dir: Path, time_scale: float, seed: int
    ) -> None:
        self.topology = topology
        self.workers = workers
        self.data_dir = data_dir
        self.config = load_config(
            None,
            {
                "data_dir": str(data_dir),
                "log_level": "WARNING",
                "simulator": {"bind_delay": 0.002, "time_scale": time_scale, "seed": seed},
            },
            environ={},
        )
        self.outcomes: dict[str, Outcome] = {}
        self._stop = asyncio.Event()
        self._server: asyncio.Task[None] | None = None
        self._children: list[ChildProcess] = []
        self._follower: Follower | None = None
        self._nc: Client | None = None

    async def start(self) -> None:
        started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        self._server = asyncio.create_task(
            serve(self.config, {"binder"}, self._stop, started=started, topology=self.topology)
        )
        first: list[asyncio.Future[Any]] = [self._server, started]
        done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if self._server in done:
            self._server.result()  # the start-up error
            raise RuntimeError("the binder ended before it started")
        running = started.result()
        for index in range(self.workers):
            args = serve_args("worker", running.nats_url, self.data_dir / f"worker-{index}")
            # The workers connect with the worker identity of the secured embedded server.
            env = {**WORKER_ENV, "GSCH_NATS__CREDENTIALS_DIR": str(self.config.data_path / "bus")}
            child = ChildProcess(args, self.data_dir / f"worker-{index}.log", env)
            await child.start()
            self._children.append(child)
        self._follower = Follower(running.store, ALL_REQUEST_EVENTS, self._apply)
        await self._follower.start(await running.store.last_seq())
        # The load comes as a user's would: with the submitter's credentials.
        self._nc = await connect(
            self.config, running.nats_url, "gsch-experiment", role=Role.SUBMITTER
        )

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.close()
        if self._follower is not None:
            await self._follower.stop()
        for child in self._children:
            await child.stop()
        self._stop.set()
        if self._server is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._server

    def _apply(self, stored: StoredEvent) -> None:
        outcome = self.outcomes.get(stored.request_id or "")
        if outcome is None:
            return
        match stored.event:
            case RequestBound(at=at, placements=placements):
                outcome.bound_at = at
                outcome.cluster = placements[0].cluster if placements else None
            case WorkloadFinished(at=at):
                outcome.finished_at = at
            case RequestRequeued():
                outcome.waited = True
            case RequestFailed(reasons=reasons):
                outcome.failed = reasons[-1] if reasons else "failed"
            case RequestRejected(reason=reason):
                outcome.failed = reason
            case _:
                pass

    async def publish(self, request_id: str, body: dict[str, Any]) -> None:
        if self._nc is None:
            raise RuntimeError("the pipeline is not started")
        self.outcomes[request_id] = Outcome(time.time())
        await publish_request(self._nc, msgspec.json.encode(body), request_id)

    async def wait_done(self, request_ids: list[str], timeout: float) -> None:
        """Until every one of `request_ids` has finished (or failed); TimeoutError after
        `timeout` seconds, naming how many are still running."""
        deadline = time.monotonic() + timeout
        while not all(self.outcomes[r].done for r in request_ids):
            if time.monotonic() > deadline:
                left = sum(1 for r in request_ids if not self.outcomes[r].done)
                raise TimeoutError(f"{left} of {len(request_ids)} requests did not finish")
            await asyncio.sleep(0.005)
