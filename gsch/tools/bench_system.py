"""The system a benchmark measures: a fresh embedded nats-server (or a cluster of them with
R3 streams), a binder serving a generated fleet, and competing worker processes; with what a
report needs from it — the raw publish rate of the same server and the CPU each process
spent (what the workers counted is read by `bench_scrape`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import StreamsError, apply_declarations, load_declarations
from gsch.runtime.connection import server_list
from gsch.runtime.embedded import EmbeddedCluster, EmbeddedNats, free_port
from gsch.runtime.nats_client import connect_client
from gsch.runtime.procs import ChildProcess, serve_args

WINDOW = 500  # pipelined publishes in flight at once
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Shape:
    """What to start: the fleet, the workers and the NATS servers."""

    clusters: int
    nodes_per_cluster: int
    workers: int
    nats_nodes: int = 1  # 3: a JetStream cluster on loopback, every stream R3
    raw_messages: int = 20000
    api: bool = False  # an API process too: its projector and snapshot follow the log


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has spent so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class CpuMeter:
    """CPU spent per process over a window: `start()`, then `seconds()` since."""

    pids: dict[str, int]
    _started: dict[str, float] = field(default_factory=dict)
    _at: float = 0.0

    def start(self) -> None:
        self._started = self._read()
        self._at = time.monotonic()

    def _read(self) -> dict[str, float]:
        now: dict[str, float] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError, IndexError):
                now[name] = process_cpu_seconds(pid)
        return now

    def report(self) -> dict[str, Any]:
        """CPU seconds per process since `start`, and each as a share of one core."""
        wall = max(1e-9, time.monotonic() - self._at)
        now = self._read()
        spent = {name: now[name] - self._started[name] for name in now if name in self._started}
        return {
            "wall_seconds": round(wall, 2),
            "cpu_seconds": {name: round(value, 2) for name, value in spent.items()},
            "cores": {name: round(value / wall, 2) for name, value in spent.items()},
            "total_cores": round(sum(spent.values()) / wall, 2),
        }


async def raw_publish_rate(js: Any, count: int, replicas: int) -> float:
    """Pipelined publishes of ~300-byte messages from one nats-py client, in messages/s: the
    client's own ceiling on this server, measured in the same run as the scheduler."""
    await js.add_stream(
        StreamConfig(
            name="GSCH_BENCH_RAW",
            subjects=["gsch.bench.raw"],
            storage=StorageType.FILE,
            num_replicas=replicas,
        )
    )
    payload = b"x" * 300
    started = time.perf_counter()
    for offset in range(0, count, WINDOW):
        futures = [
            await js.publish_async("gsch.bench.raw", payload)
            for _ in range(min(WINDOW, count - offset))
        ]
        await asyncio.wait_for(asyncio.gather(*futures), 30)
    rate = count / (time.perf_counter() - started)
    await js.delete_stream("GSCH_BENCH_RAW")
    return rate


async def _wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/livez") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"process with metrics port {port} not ready")


@dataclass
class System:
    """A running system under test."""

    nc: Client
    store: EventStore
    url: str
    worker_ports: list[int]
    pids: dict[str, int]
    raw_rate: float
    shape: Shape
    monitor_url: str | None = None  # the single server's monitoring endpoint


class _Servers:
    """One embedded server (with its monitoring endpoint, for message counts), or a
    JetStream cluster of `size` on loopback."""

    def __init__(self, data_dir: Path, size: int) -> None:
        self.monitor_port = free_port() if size == 1 else None
        self.single = (
            EmbeddedNats(data_dir, extra_args=["--http_port", str(self.monitor_port)])
            if size == 1
            else None
        )
        self.cluster = EmbeddedCluster(data_dir / "nats-cluster", size) if size > 1 else None

    async def start(self) -> str:
        if self.single is not None:
            return await self.single.start()
        assert self.cluster is not None
        return await self.cluster.start()

    async def stop(self) -> None:
        if self.single is not None:
            await self.single.stop()
        if self.cluster is not None:
            await self.cluster.stop()

    def pids(self) -> dict[str, int]:
        nodes = [self.single] if self.single is not None else self.cluster.nodes  # type: ignore[union-attr]
        return {
            f"nats-server-{index}" if len(nodes) > 1 else "nats-server": node.pid
            for index, node in enumerate(nodes)
            if node.pid is not None
        }


@contextlib.asynccontextmanager
async def running_system(shape: Shape, data_dir: Path) -> AsyncIterator[System]:
    """Start everything, wait until the fleet is declared and every worker serves, yield;
    stop everything in reverse order."""
    servers = _Servers(data_dir, shape.nats_nodes)
    url = await servers.start()
    children: list[ChildProcess] = []
    replicas = 3 if shape.nats_nodes >= 3 else 1
    # Children read the replica count from the environment: every process declares the
    # streams the same way (else the first worker would turn R3 streams back into R1).
    env = {"GSCH_NATS__REPLICAS": str(replicas)}
    # Named like gsch's own connections, so message counts are attributed to the benchmark.
    nc = await connect_client(
        server_list(url), name=f"gsch-bench-{os.getpid()}", max_reconnect_attempts=-1
    )
    try:
        await _declare(nc, replicas)
        store = EventStore(nc)
        raw_rate = await raw_publish_rate(nc.jetstream(), shape.raw_messages, replicas)

        binder_port = free_port()
        binder = ChildProcess(
            serve_args(
                "binder", url, data_dir,
                ["--generated-topology", f"{shape.clusters}x{shape.nodes_per_cluster}",
                 "--metrics-listen", f"127.0.0.1:{binder_port}"],
            ),
            data_dir / "binder.log",
            env,
        )  # fmt: skip
        await binder.start()
        children.append(binder)
        await _wait_ready(binder_port)
        await _wait_for_fleet(store, shape.clusters * shape.nodes_per_cluster)

        worker_ports = [free_port() for _ in range(shape.workers)]
        for index, port in enumerate(worker_ports):
            worker = ChildProcess(
                serve_args("worker", url, data_dir, ["--metrics-listen", f"127.0.0.1:{port}"]),
                data_dir / f"worker-{index}.log",
                env,
            )
            await worker.start()
            children.append(worker)
        for port in worker_ports:
            await _wait_ready(port)
        pids = servers.pids()
        for index, child in enumerate(children):
            if child.pid is not None:
                pids["binder" if index == 0 else f"worker-{index - 1}"] = child.pid
        if shape.api:
            pids.update(await _start_api(url, data_dir, env, children))
        pids["bench"] = os.getpid()
        monitor_port = servers.monitor_port
        monitor = f"http://127.0.0.1:{monitor_port}" if monitor_port is not None else None
        yield System(nc, store, url, worker_ports, pids, raw_rate, shape, monitor)
    finally:
        await nc.close()
        for child in reversed(children):
            await child.stop()
        await servers.stop()


async def _start_api(
    url: str, data_dir: Path, env: dict[str, str], children: list[ChildProcess]
) -> dict[str, int]:
    """An API process (projector, snapshot, planner process), ready to serve: its pids."""
    port = free_port()
    api = ChildProcess(
        serve_args("api", url, data_dir, ["--api-listen", f"127.0.0.1:{port}"]),
        data_dir / "api.log",
        env,
    )
    await api.start()
    children.append(api)
    await _wait_ready(port)
    assert api.pid is not None
    pids = {"api": api.pid}
    # Its planner processes keep a snapshot of their own: they follow the log too.
    for index, pid in enumerate(_children_of(api.pid)):
        pids[f"api-planner-{index}"] = pid
    return pids


def _children_of(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in found]
    return []


async def _declare(nc: Client, replicas: int, timeout: float = 60.0) -> None:
    """Apply the declarations, once a new cluster has elected its JetStream meta leader."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                await apply_declarations(nc, load_declarations(replicas=replicas))
                return
            except (StreamsError, nats.errors.Error):
                await asyncio.sleep(0.5)


async def _wait_for_fleet(store: EventStore, nodes: int, timeout: float = 120.0) -> None:
    feed = SnapshotFeed(store)
    snapshot = await feed.start()
    try:
        deadline = time.monotonic() + timeout
        while sum(len(c.nodes) for c in snapshot.clusters.values()) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the binder did not declare {nodes} nodes")
            await asyncio.sleep(0.1)
    finally:
        await feed.stop()
