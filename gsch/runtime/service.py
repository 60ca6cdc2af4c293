"""One place where a gsch process assembles its parts and tears them down in reverse order:
NATS (embedded or external) → streams → event store → snapshot → roles → HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

from gsch.bus.roles import Role
from gsch.clusters.binder import Backend, Binder
from gsch.clusters.feed import SnapshotFeed
from gsch.clusters.simulator import Simulator
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import Topology, load_topology
from gsch.eventstore.guard import LogGuard, check_declared
from gsch.eventstore.migration import log_outdated
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import (
    Declarations,
    Outdated,
    apply_declarations,
    load_declarations,
)
from gsch.metrics import EVENT_LOG_ACTIONS, EVENT_LOG_OUTDATED, SNAPSHOT_LAST_SEQ, initialise_labels
from gsch.policies.registry import PROFILES
from gsch.runtime.announce import API, announcing
from gsch.runtime.bus import Bus, open_bus
from gsch.runtime.config import Config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.secrets import CONTINUE_SECRET, installation_secret
from gsch.runtime.tenancy import TenancyFeed
from gsch.scheduler.worker import Worker

log = logging.getLogger(__name__)

ROLES = ("worker", "api", "binder", "notifier", "housekeeper")
# What `gsch serve` runs without --roles. The notifier calls out of the installation, so it
# runs only where it is asked for (and only to `[callbacks] allowed_hosts`).
DEFAULT_ROLES = ("worker", "api", "binder", "housekeeper")
# The roles that start from the cluster-state snapshot (see `serve`).
SNAPSHOT_ROLES = frozenset({"worker", "binder", "housekeeper"})


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
        bus = await stack.enter_async_context(open_bus(config, name))
        # Every role may read the log; the first one's connection feeds what they share.
        reading_role = Role(next(role for role in ROLES if role in roles))
        declarations = await _declarations(config, bus, reading_role)
        stores = _RoleStores(bus, declarations, stack)
        reader = await stores.of(reading_role)
        tasks: list[asyncio.Task[None]] = []
        api_url = None

        # Workers plan on the snapshot, binders declare inventory from it, the housekeeper
        # writes it to the snapshot store. Each starts from the newest good stored snapshot
        # and folds the rest. The API has no use for it (its dry runs have snapshots of
        # their own, in planner processes: gsch.api.planners), so an API alone folds none.
        snapshots = SnapshotStore(
            reader.nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout
        )
        feed = SnapshotFeed(reader, snapshots)
        snapshot = feed.snapshot
        derived: list[Callable[[], int]] = []
        if SNAPSHOT_ROLES & roles:
            snapshot = await feed.start()
            stack.push_async_callback(feed.stop)
            derived.append(lambda: snapshot.last_seq)
        # Projects and workspaces declared as data, for those who plan and admit.
        tenancy = None
        if {"worker", "api"} & roles:
            tenancy = TenancyFeed(reader)
            await tenancy.start()
            stack.push_async_callback(tenancy.stop)
        if "binder" in roles:
            binder_store = await stores.of(Role.BINDER)
            binder = await _binder(config, binder_store, snapshot, stack, topology)
            if binder is not None:
                tasks.append(asyncio.create_task(binder.run(stop)))
        if "worker" in roles:
            worker = Worker(config, await stores.of(Role.WORKER), snapshot, name)
            assert tenancy is not None
            tenancy.listen(worker.use_tenancy)
            tasks.append(asyncio.create_task(worker.run(stop)))
        elif "housekeeper" not in roles:
            # A binder needs the snapshot only to declare inventory and re-arm lifetimes
            # at start; following every reservation afterwards would be wasted work.
            await feed.stop()

        if "notifier" in roles:
            from gsch.callbacks.notifier import Notifier

            notifier = Notifier(await stores.of(Role.NOTIFIER), config.callbacks)
            tasks.append(asyncio.create_task(notifier.run(stop)))
        if "api" in roles:
            assert tenancy is not None
            api_url = await _start_api(
                config, await stores.of(Role.API), bus.url, name, tenancy, stack, tasks, stop,
                roles, derived,
            )  # fmt: skip
        if "housekeeper" in roles:
            from gsch.housekeeping.process import start_housekeeper

            # Beside an API it reads the API's read model; alone it keeps one itself.
            await start_housekeeper(
                config, await stores.of(Role.HOUSEKEEPER), snapshot, "api" not in roles,
                stack, tasks, stop, derived,
            )  # fmt: skip

        def derived_through() -> int:  # a notifier alone derives nothing from the log
            return max((seen() for seen in derived), default=0)

        guard = LogGuard(reader.nc, derived_through, "this process")
        tasks.append(asyncio.create_task(guard.run(stop)))
        listen = config.metrics.listen if metrics_listen is None else metrics_listen
        if "api" not in roles and listen:
            runner, metrics_url = await _http_site(metrics_app(), listen)
            stack.push_async_callback(runner.cleanup)
            log.info("metrics listening", extra={"url": f"{metrics_url}/metrics"})

        if started is not None and not started.done():
            store = await stores.of(Role.API if "api" in roles else reading_role)
            started.set_result(Running(bus.url, store, api_url, bus.embedded))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("role ended with an error", exc_info=result)
                raise result


async def _declarations(config: Config, bus: Bus, role: Role) -> Declarations:
    """Declare the streams and consumers where this process may (the log itself only on
    the first start of its embedded server), else check that an admin did."""
    declarations = load_declarations(
        replicas=config.nats.replicas, lease_seconds=config.queue.lease_seconds
    )
    if not bus.may_declare:
        nc = await bus.connection(role)
        checked = await check_declared(nc, declarations)
        _say_if_outdated(await log_outdated(nc, declarations))
        return checked
    admin = await bus.connection(Role.ADMIN)
    report = await apply_declarations(admin, declarations, create_streams=bus.first_start)
    for line in report.lines:
        log.info("streams: %s", line)
    _say_if_outdated(report.outdated_log)
    return declarations


def _say_if_outdated(outdated: Outdated | None) -> None:
    """A log declared by an earlier gsch: scheduling works on it, housekeeping may not, and
    the operator is told at every start what to run, and `gsch_event_log_outdated` says it
    until then (the alert GschEventLogOutdated)."""
    needed = None if outdated is None else "apply" if outdated.in_place else "migrate"
    for action in EVENT_LOG_ACTIONS:
        EVENT_LOG_OUTDATED.labels(action=action).set(1 if action == needed else 0)
    if outdated is not None:
        log.error("%s", outdated.advice(), extra={"differences": list(outdated.differences)})


class _RoleStores:
    """An event store per connection: roles sharing credentials share one."""

    def __init__(self, bus: Bus, declarations: Declarations, stack: AsyncExitStack) -> None:
        self._bus = bus
        self._declarations = declarations
        self._stack = stack
        self._stores: dict[int, EventStore] = {}

    async def of(self, role: Role) -> EventStore:
        nc = await self._bus.connection(role)
        if id(nc) not in self._stores:
            store = EventStore(
                nc,
                declarations=self._declarations,
                manages_streams=self._bus.may_declare,
                request_timeout=self._bus.config.nats.request_timeout,
            )
            self._stack.push_async_callback(store.close)
            self._stores[id(nc)] = store
        return self._stores[id(nc)]


async def _binder(
    config: Config,
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
        backends.append(await stack.enter_async_context(agent_backend(store.nc, config, store)))
    if not backends:
        log.warning(
            "binder role without a topology or member clusters: nothing to bind to (for the"
            " simulated demo fleet: --topology config/topology-demo.toml)"
        )
        return None
    return Binder(config, store, backends)


async def _start_api(
    config: Config,
    store: EventStore,
    url: str,
    name: str,
    tenancy: TenancyFeed,
    stack: AsyncExitStack,
    tasks: list[asyncio.Task[None]],
    stop: asyncio.Event,
    roles: set[str],
    derived: list[Callable[[], int]],
) -> str:
    """The projector, the read-model gauges, the planner processes and the HTTP API (which
    serves /metrics too)."""
    from gsch.api.app import make_app
    from gsch.api.gedge import gedge_door
    from gsch.api.planners import PlanLimits, PlannerPool
    from gsch.api.tenancy import TenancyRoutes
    from gsch.projections.gauges import ReadModelGauges
    from gsch.projections.projector import start_projecting
    from gsch.projections.reader import ReadModel
    from gsch.scheduler.rules import intake_rules, with_tenancy

    # The workers' intake rules, with the workspaces declared as data when a request comes.
    base_intake = intake_rules(config)
    # Read only: a read model behind the compaction watermark is rebuilt from a snapshot.
    snapshots = SnapshotStore(
        store.nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout
    )
    projector = await start_projecting(
        store, config.database_path, snapshots, stack, tasks, stop, derived
    )
    gauges_reader = ReadModel(projector.db_path, projector.stream, connections=1)
    stack.push_async_callback(gauges_reader.close)
    gauges = ReadModelGauges(gauges_reader)
    tasks.append(asyncio.create_task(gauges.run(stop, config.metrics.refresh_interval)))
    limits = PlanLimits(
        config.api.plan_processes,
        config.api.plan_queue,
        config.api.plan_timeout,
        config.api.plan_niceness,
    )
    # Without a worker here, the snapshot gauge is the planner's.
    on_sequence = SNAPSHOT_LAST_SEQ.set if "worker" not in roles else lambda _: None
    planners = PlannerPool(config, url, name, limits, on_sequence)
    planners.start()
    stack.push_async_callback(planners.stop)
    secret = None
    if config.api.continue_secret_file is None:
        secret = installation_secret(config.data_path, CONTINUE_SECRET)
    app = make_app(
        projector,
        store=store,
        planner=planners,
        config=config.api,
        continue_secret=secret,
        intake=lambda: with_tenancy(base_intake, tenancy.tenancy),
        gedge=gedge_door(config, store, projector),
        tenancy=TenancyRoutes(store, tenancy, config),
    )
    runner, api_url = await _http_site(app, config.api.listen)
    stack.push_async_callback(runner.cleanup)
    # Where `gsch get`, `explain` and `plan` find this API; withdrawn before it closes.
    stack.enter_context(announcing(config.data_path, API, api_url))
    log.info("api listening", extra={"url": api_url})
    return api_url


def default_topology_path() -> Path:
    from gsch.paths import shipped

    return shipped("config") / "topology-demo.toml"
