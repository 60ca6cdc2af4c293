"""The commands that run gsch itself: `demo`, `serve`, `agent` and `bench`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gsch.cli.common import add_command, config_of, event_store, until_signalled
from gsch.cli.output import add_output_flag
from gsch.logs import setup_logging

if TYPE_CHECKING:
    from gsch.cli.common import Commands


# --- demo --------------------------------------------------------------------------------


def demo_command(commands: Commands) -> None:
    demo = add_command(
        commands,
        "demo",
        "run everything on the embedded server with sample load",
        _demo,
        connects=False,
    )
    demo.add_argument(
        "--duration", type=float, default=20.0, help="seconds of load (default: %(default)s)"
    )
    demo.add_argument(
        "--rate", type=float, default=40.0, help="requests per second (default: %(default)s)"
    )
    demo.add_argument(
        "--workers", type=int, default=2, help="competing worker processes (default: %(default)s)"
    )
    demo.add_argument("--data-dir", help="default: a fresh temporary directory")
    demo.add_argument(
        "--api-listen",
        default="127.0.0.1:8080",
        help="host:port of the HTTP API (default: %(default)s)",
    )
    demo.add_argument("--keep-running", action="store_true", help="serve the API until Ctrl-C")


async def _demo(args: argparse.Namespace) -> int:
    from gsch.tools.demo import run_demo

    return await run_demo(args)


# --- serve -------------------------------------------------------------------------------


def serve_command(commands: Commands) -> None:
    serve = add_command(commands, "serve", "run gsch roles", _serve)
    serve.add_argument(
        "--roles", default="worker,api,binder", help="roles to run (default: %(default)s)"
    )
    serve.add_argument("--api-listen", help="host:port of the HTTP API")
    serve.add_argument("--metrics-listen", help="host:port for /metrics without the api role")
    serve.add_argument("--topology", help="topology file of simulated clusters")
    serve.add_argument("--generated-topology", help=argparse.SUPPRESS)  # CxM, for the bench


async def _serve(args: argparse.Namespace) -> int:
    from gsch.clusters.topology import generated_topology
    from gsch.runtime.service import serve

    config = config_of(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await until_signalled(stop)
    roles = {r.strip() for r in args.roles.split(",") if r.strip()}
    topology = None
    if args.generated_topology:
        clusters, nodes = (int(x) for x in args.generated_topology.lower().split("x"))
        topology = generated_topology(clusters, nodes)
    await serve(config, roles, stop, topology=topology, metrics_listen=args.metrics_listen)
    return 0


# --- agent -------------------------------------------------------------------------------


def agent_command(commands: Commands) -> None:
    agent = add_command(
        commands, "agent", "serve one member cluster from inside it, over NATS", _agent
    )
    agent.add_argument("--cluster", required=True, help="the member cluster's name")
    agent.add_argument("--node", help="this node's name, the probe's source (default $NODE_NAME)")


async def _agent(args: argparse.Namespace) -> int:
    import os

    from gsch.kube.agent import serve_agent
    from gsch.runtime.service import nats_connection

    config = config_of(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await until_signalled(stop)
    # The node the agent runs on (the downward API's spec.nodeName): the probe's source.
    node = args.node or os.environ.get("NODE_NAME")
    # A service, not a one-shot client: its connection is a service's (the embedded server
    # when no URL is given, drained on the way out).
    async with (
        nats_connection(config, f"gsch-agent-{args.cluster}") as (nc, _, _),
        event_store(config, nc) as store,
    ):
        await serve_agent(config, nc, store, args.cluster, node, stop)
    return 0


# --- bench -------------------------------------------------------------------------------


def bench_command(commands: Commands) -> None:
    bench = add_command(
        commands, "bench", "measure placements/s on the embedded server", _bench, connects=False
    )
    for flag, kind, default, text in (
        ("--requests", int, 5000, "requests to publish"),
        ("--workers", int, 2, "competing worker processes"),
        ("--clusters", int, 100, "simulated member clusters"),
        ("--nodes-per-cluster", int, 20, "nodes in each simulated cluster"),
        ("--policy", str, "GMostRequestedPriority", "the policy every request asks for"),
        ("--levels", int, 3, "levels per request"),
        ("--raw-messages", int, 20000, "messages for the raw JetStream publish rate"),
    ):
        bench.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    bench.add_argument("--data-dir", help="default: a fresh temporary directory")
    add_output_flag(bench)
    bench.add_argument(
        "--plan-only", action="store_true", help="time the planner alone, no NATS, per fleet size"
    )
    bench.add_argument(
        "--fleet-sizes",
        type=int,
        nargs="+",
        default=[100, 1000, 10000],
        help="with --plan-only: cluster counts to measure (default: %(default)s)",
    )
    bench.add_argument(
        "--history",
        type=int,
        nargs="+",
        metavar="N",
        help="write a realistic history of N events (per size), snapshot and compact it, and"
        " time worker, binder and API starts against it",
    )
    bench.add_argument(
        "--steady",
        type=float,
        metavar="HOURS",
        help="storage under a steady load with a retention window of HOURS of simulated"
        " time, reported at 1x, 2x and 4x the window",
    )
    bench.add_argument(
        "--housekeeping-every",
        type=int,
        default=100_000,
        help="with --history: snapshot and compact after every this many events, as the"
        " housekeeper would all along; 0: only at the end, after timing a replay from the"
        " log's beginning (default: %(default)s)",
    )
    bench.add_argument(
        "--history-tail",
        type=int,
        default=20000,
        help="with --history: events written after the last snapshot (default: %(default)s)",
    )
    bench.add_argument(
        "--ready-timeout",
        type=float,
        default=600.0,
        help="with --history: seconds a process may take to be ready (default: %(default)s)",
    )
    bench.add_argument(
        "--plan-requests",
        type=int,
        default=200,
        help="with --plan-only: requests per case (default: %(default)s)",
    )


def _bench(args: argparse.Namespace) -> Coroutine[Any, Any, int] | int:
    if args.plan_only:
        from gsch.tools.bench_plan import run_plan_bench

        return run_plan_bench(args)
    if args.steady:
        from gsch.tools.bench_steady import run_steady_bench

        return run_steady_bench(args)
    if args.history:
        from gsch.tools.bench_history import run_history_bench

        return run_history_bench(args)
    from gsch.tools.bench import run_bench

    return run_bench(args)
