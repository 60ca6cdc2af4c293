"""The `gsch` command. Exit codes: 0 ok, 1 error, 2 usage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import msgspec
import yaml

from gsch import __version__
from gsch.config import Config, ConfigError, load_config
from gsch.logs import setup_logging


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $GSCH_CONFIG)")
    parser.add_argument("--nats", help="NATS URL(s); unset: the embedded server")
    parser.add_argument("--nats-user")
    parser.add_argument("--nats-password-file")
    parser.add_argument("--nats-token-file")
    parser.add_argument("--nats-creds", help="NATS .creds file (JWT + NKey)")
    parser.add_argument("--tls-ca")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--data-dir", help="where the embedded server and read model live")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    nats: dict[str, Any] = {}
    for flag, key in (
        ("nats", "url"), ("nats_user", "user"), ("nats_password_file", "password_file"),
        ("nats_token_file", "token_file"), ("nats_creds", "creds_file"), ("tls_ca", "tls_ca"),
        ("tls_cert", "tls_cert"), ("tls_key", "tls_key"),
    ):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            nats[key] = value
    overrides: dict[str, Any] = {"nats": nats} if nats else {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "api_listen", None):
        overrides["api"] = {"listen": args.api_listen}
    if getattr(args, "topology", None):
        overrides["simulator"] = {"topology": args.topology}
    return overrides


def _config(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config", None), _overrides(args))


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


async def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


# --- serve -------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from gsch.clusters.topology import generated_topology
    from gsch.service import serve

    config = _config(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await _until_signalled(stop)
    roles = {r.strip() for r in args.roles.split(",") if r.strip()}
    topology = None
    if args.generated_topology:
        clusters, nodes = (int(x) for x in args.generated_topology.lower().split("x"))
        topology = generated_topology(clusters, nodes)
    await serve(config, roles, stop, topology=topology, metrics_listen=args.metrics_listen)
    return 0


# --- agent -------------------------------------------------------------------------------


async def _agent(args: argparse.Namespace) -> int:
    import os

    from gsch.eventstore.store import EventStore
    from gsch.kube.agent import serve_agent
    from gsch.service import nats_connection

    config = _config(args)
    setup_logging(config.log_level)
    stop = asyncio.Event()
    await _until_signalled(stop)
    # The node the agent runs on (the downward API's spec.nodeName): the probe's source.
    node = args.node or os.environ.get("NODE_NAME")
    async with nats_connection(config, f"gsch-agent-{args.cluster}") as (nc, _, _):
        store = EventStore(nc, request_timeout=config.nats.request_timeout)
        try:
            await serve_agent(config, nc, store, args.cluster, node, stop)
        finally:
            await store.close()
    return 0


# --- submit / get ------------------------------------------------------------------------


def _load_request_file(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)  # manifests are usually YAML; the wire is JSON


async def _connect_client(config: Config) -> Any:
    from gsch.connection import connect, discover_url

    return await connect(config, discover_url(config), "gsch-cli")


async def _submit(args: argparse.Namespace) -> int:
    from gsch.client import ApiError, api_get, publish_request
    from gsch.samples import request_id_of

    config = _config(args)
    body = _load_request_file(args.file)
    request_id = request_id_of(body) if isinstance(body, dict) else None
    if isinstance(body, dict) and request_id is None and "apiVersion" not in body:
        request_id = f"cli-{time.time_ns():x}"
        body["request_id"] = request_id
    nc = await _connect_client(config)
    try:
        seq = await publish_request(nc, msgspec.json.encode(body), request_id)
    finally:
        await nc.close()
    print(f"submitted {request_id or '(id assigned by gsch)'} (intake sequence {seq})")
    if not args.wait or request_id is None:
        return 0
    api = args.api or f"http://{config.api.listen}"
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiError):
            found = await api_get(api, f"/v1/requests/{request_id}")
            if found.get("state") in ("bound", "failed", "cancelled", "rejected"):
                print(json.dumps(found, indent=2) if args.output == "json" else _one_line(found))
                return 0 if found["state"] == "bound" else 1
        await asyncio.sleep(0.25)
    print(f"{request_id}: not settled after {args.timeout}s", file=sys.stderr)
    return 1


def _one_line(request: dict[str, Any]) -> str:
    placement = request.get("placement") or {}
    where = f" on {placement.get('cluster')}/{placement.get('node')}" if placement else ""
    reason = f" ({request['reason']})" if request.get("reason") else ""
    return f"{request.get('id')}: {request.get('state')}{where}{reason}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


async def _get(args: argparse.Namespace) -> int:
    from gsch.client import api_get

    config = _config(args)
    api = args.api or f"http://{config.api.listen}"
    what = args.what
    if what == "requests":
        params = {k: v for k, v in (("state", args.state), ("policy", args.policy)) if v}
        result = await api_get(api, "/v1/requests", limit=args.limit, **params)
        rows = [["ID", "STATE", "POLICY", "CLUSTER", "NODE", "ATTEMPTS"]]
        for item in result["items"]:
            placement = item.get("placement") or {}
            rows.append([
                item["id"], item["state"], str(item.get("policy") or ""),
                str(placement.get("cluster") or ""), str(placement.get("node") or ""),
                str(item.get("attempts", "")),
            ])  # fmt: skip
    elif what == "request":
        if not args.name:
            raise SystemExit("gsch get request ID")
        result = await api_get(api, f"/v1/requests/{args.name}")
        rows = []
        if args.output != "json":
            print(_one_line(result))
            return 0
    elif what == "clusters":
        result = await api_get(api, "/v1/clusters")
        rows = [["NAME", "TIER", "READY", "NODES"]]
        for item in result["items"]:
            rows.append([item["name"], str(item.get("tier")), str(item.get("ready")),
                         str(item.get("nodes", ""))])  # fmt: skip
    else:  # nodes
        if not args.name:
            raise SystemExit("gsch get nodes CLUSTER")
        result = await api_get(api, f"/v1/clusters/{args.name}/nodes")
        rows = [["NAME", "READY", "FREE CPU(m)", "FREE MEMORY", "FREE GPU"]]
        for item in result["items"]:
            free = item.get("free") or {}
            rows.append([item["name"], str(item.get("ready")), str(free.get("cpu_m", 0)),
                         str(free.get("memory", 0)), str(free.get("gpu", 0))])  # fmt: skip
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(_table(rows))
    return 0


async def _plan(args: argparse.Namespace) -> int:
    from gsch.client import api_post
    from gsch.explain import format_explanation

    config = _config(args)
    api = args.api or f"http://{config.api.listen}"
    body = _load_request_file(args.file)
    answer = await api_post(api, "/v1/plan", msgspec.json.encode(body))
    if args.output == "json":
        print(json.dumps(answer, indent=2))
    else:
        where = ", ".join(f"{p['cluster']}/{p['node']}" for p in answer["placements"])
        verdict = f"would place on {where}" if answer["placed"] else "would not place"
        state = f"cluster state as of sequence {answer['sequence']}; nothing was committed"
        print(f"{answer['policy']}: {verdict} ({state})")
        print(format_explanation(answer["explanation"]))
    return 0 if answer["placed"] else 1


async def _explain(args: argparse.Namespace) -> int:
    from gsch.client import api_get
    from gsch.explain import format_explanation

    config = _config(args)
    api = args.api or f"http://{config.api.listen}"
    found = await api_get(api, f"/v1/requests/{args.request_id}")
    if args.output == "json":
        print(json.dumps(found.get("explanation"), indent=2))
        return 0
    print(_one_line(found))
    print(format_explanation(found.get("explanation")))
    return 0


# --- streams / projections / audit -------------------------------------------------------


async def _streams_apply(args: argparse.Namespace) -> int:
    from gsch.eventstore.streams import apply_declarations, load_declarations

    config = _config(args)
    nc = await _connect_client(config)
    try:
        report = await apply_declarations(
            nc,
            load_declarations(
                replicas=config.nats.replicas, lease_seconds=config.queue.lease_seconds
            ),
        )
    finally:
        await nc.close()
    print(report)
    return 0


async def _rebuild(args: argparse.Namespace) -> int:
    from gsch.eventstore.store import EventStore
    from gsch.projections.projector import rebuild

    config = _config(args)
    nc = await _connect_client(config)
    try:
        started = time.monotonic()
        seq = await rebuild(EventStore(nc), config.database_path)
    finally:
        await nc.close()
    took = time.monotonic() - started
    print(f"rebuilt {config.database_path} up to sequence {seq} in {took:.1f}s")
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from gsch.eventstore.store import EventStore
    from gsch.model.request import REQUEST_ID_PATTERN
    from gsch.scheduler.cancel import cancel_request

    if not REQUEST_ID_PATTERN.match(args.request_id):
        print(f"{args.request_id!r} is not a request id", file=sys.stderr)
        return 2
    config = _config(args)
    nc = await _connect_client(config)
    try:
        outcome = await cancel_request(EventStore(nc), args.request_id, args.reason)
    finally:
        await nc.close()
    if args.output == "json":
        print(msgspec.json.encode(outcome).decode())
    else:
        print(f"{outcome.request_id}: {outcome.message}")
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from gsch.audit import audit
    from gsch.eventstore.store import EventStore

    config = _config(args)
    nc = await _connect_client(config)
    try:
        report = await audit(EventStore(nc))
    finally:
        await nc.close()
    print(report.summary())
    for title, items in (
        ("placed twice", report.double_placements),
        ("overcommitted", report.overcommits),
        ("reserved twice", report.duplicate_reservations),
        ("still reserved", report.leaked_reservations),
    ):
        for item in items[:20]:
            print(f"  {title}: {item}")
    failed = report.double_placements or report.overcommits or report.leaked_reservations
    return 0 if not failed else 1


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsch", description="Global scheduler for Kubernetes")
    parser.add_argument("--version", action="version", version=f"gsch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on the embedded server with sample load")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    demo.add_argument("--rate", type=float, default=40.0, help="requests per second")
    demo.add_argument("--workers", type=int, default=2, help="competing worker processes")
    demo.add_argument("--data-dir", help="default: a fresh temporary directory")
    demo.add_argument("--api-listen", default="127.0.0.1:8080")
    demo.add_argument("--keep-running", action="store_true", help="serve the API until Ctrl-C")

    serve = sub.add_parser("serve", help="run gsch roles")
    _add_connection_flags(serve)
    serve.add_argument("--roles", default="worker,api,binder", help="worker,api,binder")
    serve.add_argument("--api-listen", help="host:port of the HTTP API")
    serve.add_argument("--metrics-listen", help="host:port for /metrics without the api role")
    serve.add_argument("--topology", help="topology file of simulated clusters")
    serve.add_argument("--generated-topology", help=argparse.SUPPRESS)  # CxM, for the bench

    agent = sub.add_parser("agent", help="serve one member cluster from inside it, over NATS")
    _add_connection_flags(agent)
    agent.add_argument("--cluster", required=True, help="the member cluster's name")
    agent.add_argument("--node", help="this node's name, the probe's source (default $NODE_NAME)")

    submit = sub.add_parser("submit", help="publish a request to gsch.requests")
    _add_connection_flags(submit)
    submit.add_argument("file", help="request file (JSON or YAML), or - for stdin")
    submit.add_argument("--wait", action="store_true", help="wait and print the final state")
    submit.add_argument("--timeout", type=float, default=60.0)
    submit.add_argument("--api", help="API base URL (default from config api.listen)")
    submit.add_argument("-o", "--output", choices=("text", "json"), default="text")

    get = sub.add_parser("get", help="read requests, clusters and nodes from the API")
    _add_connection_flags(get)
    get.add_argument("what", choices=("requests", "request", "clusters", "nodes"))
    get.add_argument("name", nargs="?", help="request id or cluster name")
    get.add_argument("--api", help="API base URL (default from config api.listen)")
    get.add_argument("--state")
    get.add_argument("--policy")
    get.add_argument("--limit", type=int, default=50)
    get.add_argument("-o", "--output", choices=("text", "json"), default="text")

    plan = sub.add_parser("plan", help="dry run: what gsch would decide now, committing nothing")
    _add_connection_flags(plan)
    plan.add_argument("file", help="request file (JSON or YAML), or - for stdin")
    plan.add_argument("--api", help="API base URL (default from config api.listen)")
    plan.add_argument("-o", "--output", choices=("text", "json"), default="text")

    explain = sub.add_parser("explain", help="why a request was placed where it was, or not")
    _add_connection_flags(explain)
    explain.add_argument("request_id")
    explain.add_argument("--api", help="API base URL (default from config api.listen)")
    explain.add_argument("-o", "--output", choices=("text", "json"), default="text")

    cancel = sub.add_parser(
        "cancel", help="cancel a request that is not final (releases capacity, removes workloads)"
    )
    _add_connection_flags(cancel)
    cancel.add_argument("request_id")
    cancel.add_argument("--reason", default="cancelled by the user")
    cancel.add_argument("-o", "--output", choices=("text", "json"), default="text")

    streams = sub.add_parser("streams", help="stream declarations")
    streams_sub = streams.add_subparsers(dest="action", required=True)
    apply = streams_sub.add_parser("apply", help="create or update streams and consumers")
    _add_connection_flags(apply)

    projections = sub.add_parser("projections", help="read model maintenance")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    rebuild = projections_sub.add_parser("rebuild", help="replay the log into a new read model")
    _add_connection_flags(rebuild)

    audit = sub.add_parser("audit", help="check the invariants from the event log")
    _add_connection_flags(audit)

    bench = sub.add_parser("bench", help="measure placements/s on the embedded server")
    bench.add_argument("--requests", type=int, default=5000)
    bench.add_argument("--workers", type=int, default=2)
    bench.add_argument("--clusters", type=int, default=100)
    bench.add_argument("--nodes-per-cluster", type=int, default=20)
    bench.add_argument("--policy", default="GMostRequestedPriority")
    bench.add_argument("--levels", type=int, default=3, help="levels per request")
    bench.add_argument("--raw-messages", type=int, default=20000)
    bench.add_argument("--data-dir", help="default: a fresh temporary directory")
    bench.add_argument("-o", "--output", choices=("text", "json"), default="text")
    bench.add_argument(
        "--plan-only", action="store_true", help="time the planner alone, no NATS, per fleet size"
    )
    bench.add_argument(
        "--fleet-sizes",
        type=int,
        nargs="+",
        default=[100, 1000, 10000],
        help="with --plan-only: cluster counts to measure",
    )
    bench.add_argument(
        "--plan-requests", type=int, default=200, help="with --plan-only: requests per case"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        match args.command:
            case "serve":
                return _run(_serve(args))
            case "agent":
                return _run(_agent(args))
            case "demo":
                from gsch.demo import run_demo

                return _run(run_demo(args))
            case "submit":
                return _run(_submit(args))
            case "get":
                return _run(_get(args))
            case "plan":
                return _run(_plan(args))
            case "cancel":
                return _run(_cancel(args))
            case "explain":
                return _run(_explain(args))
            case "streams":
                return _run(_streams_apply(args))
            case "projections":
                return _run(_rebuild(args))
            case "audit":
                return _run(_audit(args))
            case "bench":
                if args.plan_only:
                    from gsch.bench_plan import run_plan_bench

                    return run_plan_bench(args)
                from gsch.bench import run_bench

                return _run(run_bench(args))
    except ConfigError as exc:
        print(f"gsch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's last word: one readable line, not a traceback
        print(f"gsch {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 2
