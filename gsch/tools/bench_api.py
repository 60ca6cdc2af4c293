"""`gsch bench --api-reads`: read latency of the API while plans flood it, next to the same
reads without the flood, in one run on one fleet.

An API process, a worker and a binder (simulated fleet) run as child processes on a fresh
embedded server. After a few hundred requests are placed, one client reads for `--seconds`
(a request, a page of requests, the queues, a cluster's nodes, in turn, one at a time);
then it reads as long again while `--plan-clients` clients post expensive plans back to
back (`GBalancedPriority` over every near-edge cluster: a full scan). Reported: read latency
percentiles of both phases, and the plans answered by status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats

from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.logs import setup_logging
from gsch.model.ids import numbered_request_id
from gsch.runtime.embedded import EmbeddedNats, free_port
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.tools.bench_load import percentile

TOKEN = "bench-token"
SEED_REQUESTS = 300


def _pod_request(request_id: str, policy: str, levels: list[Any]) -> bytes:
    container = {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}
    return msgspec.json.encode({
        "request_id": request_id,
        "policy": policy,
        "select_clusters": levels,
        "workload": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": request_id},
                     "spec": {"containers": [container]}},
    })  # fmt: skip


async def _seed(session: aiohttp.ClientSession, api: str, auth: dict[str, str]) -> list[str]:
    ids = [numbered_request_id("seed", index, digits=5) for index in range(SEED_REQUESTS)]
    for request_id in ids:
        body = _pod_request(request_id, "GMostRequestedPriority", [["tier=edge"]])
        async with session.post(f"{api}/v1/requests", data=body, headers=auth) as response:
            if response.status != 202:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")
    return ids


async def _settled(session: aiohttp.ClientSession, api: str, timeout: float = 120.0) -> None:
    """Until no request is unfinished: the quiet phase must be quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with session.get(f"{api}/v1/queues") as response:
            queues = (await response.json())["items"]
        if not any(q["queued"] or q["scheduling"] or q["scheduled"] for q in queues):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the seeded requests did not settle")


async def _read_for(
    session: aiohttp.ClientSession, api: str, paths: list[str], seconds: float
) -> list[float]:
    """Sequential reads for `seconds`; the latency of each, in seconds."""
    latencies = []
    deadline = time.monotonic() + seconds
    for path in itertools.cycle(paths):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        async with session.get(f"{api}{path}") as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def _flood(
    session: aiohttp.ClientSession, api: str, auth: dict[str, str], stop: asyncio.Event
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    body = _pod_request("bench-plan", "GBalancedPriority", [["tier=near-edge"]])
    while not stop.is_set():
        async with session.post(f"{api}/v1/plan", data=body, headers=auth) as response:
            await response.read()
            statuses[response.status] += 1
            if response.status == 503:  # the API said when to come back; a flood does not wait
                await asyncio.sleep(0.01)
    return statuses


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "reads": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
    }


def _data_dir(args: argparse.Namespace) -> tuple[Path, Path]:
    """The run's data directory and the API token file in it."""
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-bench-api-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "api-token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    return data_dir, token_file


async def run_api_bench(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    data_dir, token_file = _data_dir(args)
    embedded = EmbeddedNats(data_dir / "nats")
    url = await embedded.start()
    # The operator's first-time step: gsch processes never create the log themselves.
    nc = await nats.connect(url)
    try:
        await apply_declarations(nc, load_declarations())
    finally:
        await nc.close()
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {"GSCH_API__AUTH__TOKEN_FILE": str(token_file), "GSCH_LOG_LEVEL": "WARNING"}
    shape = f"{args.clusters}x{args.nodes_per_cluster}"
    children = [
        ChildProcess(
            serve_args("binder", url, data_dir, ["--generated-topology", shape]),
            data_dir / "binder.log",
        ),
        ChildProcess(serve_args("worker", url, data_dir), data_dir / "worker.log"),
        ChildProcess(
            serve_args("api", url, data_dir, ["--api-listen", f"127.0.0.1:{port}"]),
            data_dir / "api.log",
            env,
        ),
    ]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for child in children:
            await child.start()
        async with aiohttp.ClientSession() as session:
            await wait_ok(f"{api}/readyz", timeout=120)
            ids = await _seed(session, api, auth)
            await _settled(session, api)
            paths = [
                f"/v1/requests/{ids[0]}",
                "/v1/requests?limit=50",
                "/v1/queues",
                f"/v1/clusters/edge-{args.clusters // 10:05d}/nodes",
            ]
            quiet = await _read_for(session, api, paths, args.seconds)
            stop = asyncio.Event()
            flooders = [
                asyncio.create_task(_flood(session, api, auth, stop))
                for _ in range(args.plan_clients)
            ]
            flooded = await _read_for(session, api, paths, args.seconds)
            stop.set()
            plans: Counter[int] = sum(await asyncio.gather(*flooders), Counter())
    finally:
        for child in reversed(children):
            await child.stop()
        await embedded.stop()
    result = {
        "clusters": args.clusters,
        "nodes_per_cluster": args.nodes_per_cluster,
        "plan_clients": args.plan_clients,
        "seconds_per_phase": args.seconds,
        "reads_without_plans": _summary(quiet),
        "reads_while_plans_flood": _summary(flooded),
        "plans_by_status": {str(status): count for status, count in sorted(plans.items())},
        "plans_answered_per_second": round(plans[200] / args.seconds, 1),
    }
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        calm, busy = result["reads_without_plans"], result["reads_while_plans_flood"]
        print(
            f"gsch bench --api-reads: {shape} nodes, {args.plan_clients} plan clients,"
            f" {args.seconds:g} s per phase\n"
            f"  reads without plans:   p50 {calm['p50_ms']} ms, p99 {calm['p99_ms']} ms,"
            f" max {calm['max_ms']} ms ({calm['reads']} reads)\n"
            f"  reads while plans flood: p50 {busy['p50_ms']} ms, p99 {busy['p99_ms']} ms,"
            f" max {busy['max_ms']} ms ({busy['reads']} reads)\n"
            f"  plans by status: {result['plans_by_status']}"
            f" ({result['plans_answered_per_second']} answered/s)"
        )
    return 0


async def wait_ok(url: str, timeout: float = 60.0) -> None:
    """Until GET `url` answers 200 (a process's /livez or /readyz)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:g} s")
