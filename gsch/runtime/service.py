"""One place where a gsch process assembles its parts and tears them down in reverse order:
NATS (embedded or external) → streams → event store → snapshot → roles → HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from nats.aio.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

from gsch.clusters.binder import Backend, Binder
from gsch.clusters.feed import SnapshotFeed
from gsch.clusters.simulator import Simulator
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import Topology, load_topology
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.metrics import initialise_labels
from gsch.policies.registry import PROFILES
from gsch.runtime.config import Config
from gsch.runtime.connection import connect
from gsch.runtime.embedded import EmbeddedNats
from gsch.scheduler.dryrun import DryRun
from gsch.scheduler.rules import intake_rules, planner_rules
from gsch.scheduler.worker import Worker

log = logging.getLogger(__name__)

ROLES = ("worker", "api", "binder")


@dataclass
class Running:
    """What a started process exposes to its owner (CLI, demo, bench, tests)."""

    nats_url: str
    store: EventStore
    api_url: str | None
    embedded: EmbeddedNats | None


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _http_site(app: web.Application, listen: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_listen(listen)
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    sockets: list[socket.socket] = list(getattr(server, "sockets", []) or [])
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{bound_port}"


def metrics_app() -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    return app


@contextlib.asynccontextmanager
async def nats_connection(
    config: Config, name: str
) -> AsyncIterator[tuple[Client, str, EmbeddedNats | None]]:
    async with AsyncExitStack() as stack:
        embedded = None
        url = config.nats.url
        if url is None:
            embedded = EmbeddedNats(config.data_path, config.nats.embedded_port)
            url = await embedded.start()
            stack.push_async_callback(embedded.stop)
        nc = await connect(config, url, name)
        stack.push_async_callback(_close, nc)
        yield nc, url, embedded


async def _close(nc: Client) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), 10)


async def serve(
    config: Config,
    roles: set[str],
    stop: asyncio.Event,
    *,
    started: asyncio.Future[Running] | None = None,
    topology: Topology | None = None,
    metrics_listen: str | None = None,
) -> None:
    """Run the given roles until `stop` is set, then drain and close everything."""
    unknown = roles - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
    config.data_path.mkdir(parents=True, exist_ok=True)
    # `_created` series double what Prometheus stores and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    initialise_labels([policy.value for policy in PROFILES], roles)
    name = f"gsch-{'+'.join(sorted(roles))}-{socket.gethostname()}-{os.getpid()}"
    async with AsyncExitStack() as stack:
        nc, url, embedded = await stack.enter_async_context(nats_connection(config, name))
        declarations = load_declarations(
            replicas=config.nats.replicas, lease_seconds=config.queue.lease_seconds
        )
        report = await apply_declarations(nc, declarations)
        for line in report.lines:
            log.info("streams: %s", line)
        store = EventStore(
            nc, declarations=declarations, request_timeout=config.nats.request_timeout
        )
        stack.push_async_callback(store.close)
        tasks: list[asyncio.Task[None]] = []
        api_url = None

        # Workers plan on the snapshot, binders declare inventory from it, the API dry-runs
        # on it. Each starts from the newest good stored snapshot and folds the rest.
        snapshots = SnapshotStore(
            nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout
        )
        feed = SnapshotFeed(store, snapshots)
        snapshot = await feed.start()
        stack.push_async_callback(feed.stop)
        if "binder" in roles:
            binder = await _binder(config, nc, store, snapshot, stack, topology)
            if binder is not None:
                tasks.append(asyncio.create_task(binder.run(stop)))
        if "worker" in roles:
            worker = Worker(config, store, snapshot, name)
            tasks.append(asyncio.create_task(worker.run(stop)))
        elif "api" not in roles:
            # A binder needs the snapshot only to declare inventory and re-arm lifetimes
            # at start; following every reservation afterwards would be wasted work.
            await feed.stop()

        if "api" in roles:
            api_url = await _start_api(config, store, snapshots, snapshot, stack, tasks, stop)
        listen = config.metrics.listen if metrics_listen is None else metrics_listen
        if "api" not in roles and listen:
            runner, metrics_url = await _http_site(metrics_app(), listen)
            stack.push_async_callback(runner.cleanup)
            log.info("metrics listening", extra={"url": f"{metrics_url}/metrics"})

        if started is not None and not started.done():
            started.set_result(Running(url, store, api_url, embedded))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("role ended with an error", exc_info=result)
                raise result


async def _binder(
    config: Config,
    nc: Client,
    store: EventStore,
    snapshot: ClusterSnapshot,
    stack: AsyncExitStack,
    topology: Topology | None,
) -> Binder | None:
    """The binder with a backend per kind of member: simulated clusters from the topology,
    Kubernetes clusters reached centrally, and clusters served by agents over NATS."""
    backends: list[Backend] = []
    topology = topology or (
        load_topology(config.simulator.topology) if config.simulator.topology else None
    )
    if topology is not None:
        simulator = Simulator(config, topology, store, snapshot)
        appended = await simulator.declare_inventory()
        log.info("simulated inventory declared", extra={"events": appended})
        simulator.start()
        stack.push_async_callback(simulator.close)
        backends.append(simulator)
    if config.kube.clusters:
        from gsch.kube.agents import agent_backend
        from gsch.kube.central import central_backend

        backends.append(await stack.enter_async_context(central_backend(config, store)))
        backends.append(await stack.enter_async_context(agent_backend(nc, config, store)))
    if not backends:
        log.warning("binder role without a topology or member clusters: nothing to bind to")
        return None
    return Binder(config, store, backends)


async def _start_api(
    config: Config,
    store: EventStore,
    snapshots: SnapshotStore,
    snapshot: ClusterSnapshot,
    stack: AsyncExitStack,
    tasks: list[asyncio.Task[None]],
    stop: asyncio.Event,
) -> str:
    """The projector, the read-model gauges, the housekeeper and the HTTP API (which serves
    /metrics too)."""
    from gsch.api.app import make_app
    from gsch.housekeeping.housekeeper import Housekeeper
    from gsch.housekeeping.retention import Retention
    from gsch.projections.gauges import ReadModelGauges
    from gsch.projections.projector import Projector
    from gsch.projections.reader import ReadModel

    projector = Projector(store, config.database_path, snapshots)
    await projector.open()
    stack.push_async_callback(projector.close)
    tasks.append(asyncio.create_task(projector.run(stop)))
    gauges_reader = ReadModel(projector.db_path, projector.stream, connections=1)
    stack.push_async_callback(gauges_reader.close)
    gauges = ReadModelGauges(gauges_reader)
    tasks.append(asyncio.create_task(gauges.run(stop, config.metrics.refresh_interval)))
    retention = Retention(config.retention, store, projector.db_path)
    housekeeper = Housekeeper(
        store, snapshots, snapshot, config.snapshots, retention, config.retention.interval
    )
    tasks.append(asyncio.create_task(housekeeper.run(stop)))
    dry_run = DryRun(snapshot, intake_rules(config.intake), planner_rules(config))
    app = make_app(
        projector,
        store=store,
        dry_run=dry_run,
        config=config.api,
    )
    runner, api_url = await _http_site(app, config.api.listen)
    stack.push_async_callback(runner.cleanup)
    log.info("api listening", extra={"url": api_url})
    return api_url


def default_topology_path() -> Path:
    from gsch.paths import shipped

    return shipped("config") / "topology-demo.toml"
