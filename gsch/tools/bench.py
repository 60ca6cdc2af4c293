"""`gsch bench`: placements per second end to end on the embedded server, next to the raw
JetStream publish rate of nats-py measured in the same run on the same server, so the ratio
to the client's own limit is visible."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from nats.js.api import StorageType, StreamConfig

from gsch.audit import audit
from gsch.clusters.feed import SnapshotFeed
from gsch.clusters.topology import generated_topology
from gsch.eventstore.intake import intake_headers
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.eventstore.subjects import INTAKE_SUBJECT, request_events_of_type
from gsch.logs import setup_logging
from gsch.model.ids import numbered_request_id
from gsch.runtime.embedded import EmbeddedNats, free_port
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.tools.observe import RequestTracker

WINDOW = 500


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _raw_publish_rate(js: Any, count: int) -> float:
    """Pipelined publishes of ~300-byte messages from one nats-py client, in messages/s."""
    await js.add_stream(
        StreamConfig(name="GSCH_BENCH_RAW", subjects=["gsch.bench.raw"], storage=StorageType.FILE)
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


def _requests(args: argparse.Namespace, clusters: list[str]) -> list[tuple[str, bytes]]:
    chooser = random.Random(1)
    made = []
    for index in range(args.requests):
        picked = chooser.sample(clusters, min(len(clusters), 2 * args.levels))
        levels: list[Any] = [picked[i : i + 2] for i in range(0, len(picked) - 1, 2)]
        request_id = numbered_request_id("bench", index, digits=8)
        body = {
            "request_id": request_id,
            "policy": args.policy,
            "select_clusters": levels[: args.levels],
            "workload": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"b{index}"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ]
                },
            },
        }
        made.append((request_id, msgspec.json.encode(body)))
    return made


async def _scrape_conflicts(ports: list[int]) -> dict[str, int]:
    """Commit conflicts per scope (request, node), summed over the worker processes."""
    totals: dict[str, int] = {}
    pattern = re.compile(
        r'^gsch_placement_conflicts_total\{scope="([a-z_]+)"\} ([0-9.e+]+)$', re.MULTILINE
    )
    async with aiohttp.ClientSession() as session:
        for port in ports:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    for scope, value in pattern.findall(await response.text()):
                        totals[scope] = totals.get(scope, 0) + int(float(value))
    return totals


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


async def run_bench(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-bench-"))
    embedded = EmbeddedNats(data_dir)
    url = await embedded.start()
    children: list[ChildProcess] = []
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    try:
        await apply_declarations(nc, load_declarations())
        store = EventStore(nc)
        raw_rate = await _raw_publish_rate(nc.jetstream(), args.raw_messages)

        topology = generated_topology(args.clusters, args.nodes_per_cluster)
        shape = f"{args.clusters}x{args.nodes_per_cluster}"
        binder_port = free_port()
        binder_flags = [
            "--generated-topology",
            shape,
            "--metrics-listen",
            f"127.0.0.1:{binder_port}",
        ]
        binder = ChildProcess(
            serve_args("binder", url, data_dir, binder_flags), data_dir / "binder.log"
        )
        await binder.start()
        children.append(binder)
        await wait_ok(f"http://127.0.0.1:{binder_port}/livez")
        feed = SnapshotFeed(store)
        snapshot = await feed.start()
        expected_nodes = args.clusters * args.nodes_per_cluster
        while sum(len(c.nodes) for c in snapshot.clusters.values()) < expected_nodes:
            await asyncio.sleep(0.1)
        await feed.stop()

        worker_ports = [free_port() for _ in range(args.workers)]
        for index, port in enumerate(worker_ports):
            worker = ChildProcess(
                serve_args("worker", url, data_dir, ["--metrics-listen", f"127.0.0.1:{port}"]),
                data_dir / f"worker-{index}.log",
            )
            await worker.start()
            children.append(worker)
        for port in worker_ports:
            await wait_ok(f"http://127.0.0.1:{port}/livez")

        tracker = RequestTracker(store, request_events_of_type("PlacementCommitted"))
        await tracker.start(await store.last_seq())
        requests = _requests(args, [c.name for c in topology.clusters])
        js = nc.jetstream()
        published_at: dict[str, float] = {}
        first_publish = time.time()
        for offset in range(0, len(requests), WINDOW):
            futures = []
            for request_id, body in requests[offset : offset + WINDOW]:
                published_at[request_id] = time.time()
                futures.append(
                    await js.publish_async(
                        INTAKE_SUBJECT, body, headers=intake_headers(request_id, body)
                    )
                )
            await asyncio.wait_for(asyncio.gather(*futures), 60)
        publish_seconds = time.time() - first_publish
        deadline = time.monotonic() + max(120.0, args.requests / 50)
        while time.monotonic() < deadline:
            scheduled = sum(1 for p in tracker.requests.values() if p.scheduled_at is not None)
            if scheduled >= args.requests:
                break
            await asyncio.sleep(0.2)
        await tracker.stop()
        commits = [
            (p.scheduled_at, rid)
            for rid, p in tracker.requests.items()
            if p.scheduled_at is not None
        ]
        last_commit = max(at for at, _ in commits) if commits else time.time()
        latencies = [at - published_at[rid] for at, rid in commits if rid in published_at]
        # The longest pause between consecutive commits: a stall shows here, not in averages.
        times = sorted(at for at, _ in commits)
        longest_gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        elapsed = last_commit - first_publish
        conflicts = await _scrape_conflicts(worker_ports)
        report = await audit(store)
        result = {
            "requests": args.requests,
            "scheduled": len(commits),
            "workers": args.workers,
            "clusters": args.clusters,
            "nodes_per_cluster": args.nodes_per_cluster,
            "policy": args.policy,
            "publish_seconds": round(publish_seconds, 3),
            "elapsed_seconds": round(elapsed, 3),
            "placements_per_second": round(len(commits) / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_ms": {
                "p50": round(percentile(latencies, 0.50) * 1000, 1),
                "p95": round(percentile(latencies, 0.95) * 1000, 1),
                "p99": round(percentile(latencies, 0.99) * 1000, 1),
                "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            },
            "longest_commit_gap_seconds": round(longest_gap, 3),
            "commit_conflicts": sum(conflicts.values()),
            "commit_conflicts_by_scope": conflicts,
            "raw_publish_per_second": round(raw_rate, 1),
            "ratio_to_raw_publish": round((len(commits) / elapsed) / raw_rate, 4)
            if elapsed > 0
            else 0.0,
            "audit": report.summary(),
            "audit_ok": not (report.double_placements or report.overcommits),
        }
    finally:
        await nc.close()
        for child in children:
            await child.stop()
        await embedded.stop()
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(
            f"gsch bench: {result['requests']} requests, {args.workers} workers, "
            f"{args.clusters}x{args.nodes_per_cluster} nodes, {args.policy}\n"
            f"  placements/s end to end (publish -> scheduled): {result['placements_per_second']}\n"
            f"  latency publish -> scheduled: p50 {result['latency_ms']['p50']} ms, "
            f"p95 {result['latency_ms']['p95']} ms, p99 {result['latency_ms']['p99']} ms\n"
            f"  commit conflicts: {result['commit_conflicts']} {conflicts}\n"
            f"  raw pipelined JetStream publishes (nats-py, same server): "
            f"{result['raw_publish_per_second']}/s; ratio {result['ratio_to_raw_publish']}\n"
            f"  audit: {result['audit']}"
        )
    return 0 if result["scheduled"] == args.requests and result["audit_ok"] else 1
