"""The commands that run gsch itself: `demo`, `serve`, `agent`, `experiment` and `bench`."""

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
        "--roles",
        help="roles to run: worker, api, binder, housekeeper, notifier (default: all but the"
        " notifier)",
    )
    serve.add_argument("--api-listen", help="host:port of the HTTP API")
    serve.add_argument("--metrics-listen", help="host:port for /metrics without the api role")
    serve.add_argument("--topology", help="topology file of simulated clusters")
    serve.add_argument("--generated-topology", help=argparse.SUPPRESS)  # CxM, for the bench


async def _serve(args: argparse.Namespace) -> int:
    from gsch.clusters.topology import generated_topology
    from gsch.runtime.service import DEFAULT_ROLES, serve

    config = config_of(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await until_signalled(stop)
    roles = set(DEFAULT_ROLES)
    if args.roles is not None:
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

    from gsch.bus.roles import Role
    from gsch.kube.agent import serve_agent
    from gsch.runtime.bus import open_bus

    config = config_of(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await until_signalled(stop)
    # The node the agent runs on (the downward API's spec.nodeName): the probe's source.
    node = args.node or os.environ.get("NODE_NAME")
    # A service, not a one-shot client: its connection is a service's (the embedded server
    # when no URL is given, drained on the way out).
    # It connects as the agent of its cluster: it may write only that cluster's events.
    async with open_bus(config, f"gsch-agent-{args.cluster}") as bus:
        nc = await bus.connection(Role.AGENT, args.cluster)
        async with event_store(config, nc) as store:
            await serve_agent(config, nc, store, args.cluster, node, stop)
    return 0


# --- experiment --------------------------------------------------------------------------


def experiment_command(commands: Commands) -> None:
    experiment = add_command(
        commands,
        "experiment",
        "run the GEdge seed's evaluation through the pipeline: table and chart",
        _experiment,
        connects=False,
    )
    experiment.add_argument(
        "scenario", nargs="?", help="scenario file (default: config/experiment-seed.toml)"
    )
    experiment.add_argument(
        "--chart", default="gsch-experiment.png", help="PNG to write (default: %(default)s)"
    )
    experiment.add_argument(
        "--time-scale", type=float, help="real seconds per modelled second (default: the file's)"
    )
    experiment.add_argument(
        "--quick", action="store_true", help="a few videos per case: a look, not a result"
    )
    experiment.add_argument("--data-dir", help="default: a fresh temporary directory")
    add_output_flag(experiment)


async def _experiment(args: argparse.Namespace) -> int:
    from gsch.tools.experiment.command import run

    return await run(args)


# --- bench -------------------------------------------------------------------------------


def bench_command(commands: Commands) -> None:
    bench = add_command(
        commands,
        "bench",
        "measure placements/s and latency on the embedded server",
        _bench,
        connects=False,
    )
    for flag, kind, default, text in (
        ("--requests", int, 5000, "closed loop: requests published at once"),
        ("--workers", int, 2, "competing worker processes"),
        ("--clusters", int, 100, "simulated member clusters"),
        ("--nodes-per-cluster", int, 20, "nodes in each simulated cluster"),
        (
            "--policy",
            str,
            "GMostRequestedPriority",
            "the policy every request asks for (--plan-only: or all, every policy and mode)",
        ),
        ("--levels", int, 3, "levels per request"),
        ("--raw-messages", int, 20000, "messages for the raw JetStream publish rate"),
        ("--rate", float, None, "open loop: requests per second (with --sweep: the first)"),
        ("--duration", float, 15.0, "open loop: seconds of publishing (per sweep step)"),
        ("--nats-nodes", int, 1, "1: one embedded server; 3: a JetStream cluster, R3 streams"),
        ("--p99-target-ms", float, 50.0, "--sweep: p99 publish -> scheduled to stay within"),
        ("--sweep-steps", int, 8, "--sweep: at most this many rates"),
        ("--sweep-growth", float, 1.5, "--sweep: factor between rates until one misses"),
        ("--precision", float, 0.1, "--sweep: stop when the bracket is this narrow"),
    ):
        bench.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    bench.add_argument(
        "--sweep",
        action="store_true",
        help="open loops at rising rates: the highest within --p99-target-ms",
    )
    bench.add_argument(
        "--api",
        action="store_true",
        help="run an API process too (its projector follows the whole log): its CPU counts",
    )
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
        "--api-reads",
        action="store_true",
        help="read latency of the API with and without a flood of plans, same run",
    )
    bench.add_argument(
        "--plan-clients",
        type=int,
        default=4,
        help="with --api-reads: clients posting plans back to back (default: %(default)s)",
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="with --api-reads: seconds of reads per phase (default: %(default)s)",
    )
    bench.add_argument(
        "--quality",
        action="store_true",
        help="placement quality against exact optima (needs gsch[quality]: highspy), no NATS",
    )
    bench.add_argument(
        "--instances",
        type=int,
        default=20,
        help="with --quality: seeded instances per family (default: %(default)s)",
    )
    bench.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="with --quality: first seed (default: %(default)s)",
    )
    bench.add_argument(
        "--solver-time-limit",
        type=float,
        default=10.0,
        help="with --quality: seconds HiGHS may spend per instance (default: %(default)s)",
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
        "--retention-window",
        type=float,
        default=7200.0,
        metavar="SECONDS",
        help="with --history: retention of finished requests (and of their expiry records),"
        " in simulated seconds, applied while the history is written as the housekeeper"
        " would, so every size keeps the requests of one window; 0: none (default:"
        " %(default)s)",
    )
    bench.add_argument(
        "--start-samples",
        type=int,
        default=3,
        help="with --history: starts timed per process, the median reported (default: %(default)s)",
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
    bench.add_argument(
        "--case-seconds",
        type=float,
        help="with --plan-only: stop a case after this long (default: every request)",
    )


def _bench(args: argparse.Namespace) -> Coroutine[Any, Any, int] | int:
    if args.quality:
        from gsch.tools.quality.report import run_quality_bench

        return run_quality_bench(args)
    if args.plan_only:
        from gsch.tools.bench_plan import run_plan_bench

        return run_plan_bench(args)
    if args.api_reads:
        from gsch.tools.bench_api import run_api_bench

        return run_api_bench(args)
    if args.steady:
        from gsch.tools.bench_steady import run_steady_bench

        return run_steady_bench(args)
    if args.history:
        from gsch.tools.bench_history import run_history_bench

        return run_history_bench(args)
    if args.sweep and args.rate is None:
        args.rate = 200.0
    if args.nats_nodes not in (1, 3):
        raise SystemExit("gsch bench: --nats-nodes is 1 or 3")
    if (args.rate is not None and args.rate <= 0) or args.duration <= 0:
        raise SystemExit("gsch bench: --rate and --duration must be positive")
    from gsch.tools.bench import run_bench

    return run_bench(args)
