"""`gsch bench --history N [N ...]`: how long processes take to be ready after a long history.

For each size, on a fresh embedded server: write N events of a realistic history
(`tools/history.py`), time a start that replays every cluster event from the log's beginning
(what every start did before snapshots), take two snapshots and compact behind them as the
housekeeper does, write a tail (the events since the last snapshot), then start a worker, a
binder and an API process and time each from spawn to ready (worker and binder: their
/livez, served once their cluster state is complete; API: /readyz, its read model caught up),
the median of `--start-samples` starts. The API's first start builds its read model from the
log (bounded by retention, not by the age of the installation), the ones after it restart.
Retention runs while the history is written (`--retention-window`,
`tools/history_retention.py`), so every size keeps the requests of one window, as an
installation does. Each compaction pass is timed, with the CPU the server spent on it
(`pass_costs.py`): with housekeeping all along, the first and last tenth of the passes show
whether a pass grows with the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import nats

from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS, TELEMETRY_STREAM
from gsch.housekeeping.housekeeper import write_snapshot
from gsch.logs import setup_logging
from gsch.runtime.embedded import EmbeddedNats, free_port
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.tools.history import HistoryGenerator, HistoryShape
from gsch.tools.history_retention import HistoryRetention, advance
from gsch.tools.pass_costs import PassCosts, timed_compaction


async def _ready(url: str, timeout: float) -> float:
    """Seconds until `url` answers 200."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - started < timeout:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{url} not ready after {timeout} s")


async def _time_start(url: str, root: Path, roles: str, timeout: float) -> float:
    port = free_port()
    flag = "--api-listen" if roles == "api" else "--metrics-listen"
    extra = [flag, f"127.0.0.1:{port}"]
    if roles == "binder":
        extra += ["--generated-topology", "2x2"]  # a binder needs something to serve
    env = {"GSCH_LOG_LEVEL": "WARNING", "GSCH_SNAPSHOTS__INTERVAL": "0"}
    child = ChildProcess(serve_args(roles, url, root / roles, extra), root / f"{roles}.log", env)
    path = "/readyz" if roles == "api" else "/livez"
    started = time.monotonic()
    await child.start()
    try:
        await _ready(f"http://127.0.0.1:{port}{path}", timeout)
        return time.monotonic() - started
    finally:
        await child.stop()


async def _median_start(url: str, root: Path, roles: str, args: argparse.Namespace) -> float:
    """The median of `--start-samples` starts (a restart each after the first): one start
    takes about a second, so a single sample on a shared machine is mostly noise."""
    samples = [
        await _time_start(url, root, roles, args.ready_timeout) for _ in range(args.start_samples)
    ]
    return round(statistics.median(samples), 2)


async def _caught_up(feed: SnapshotFeed, store: EventStore) -> None:
    newest = await store.last(ALL_CLUSTER_EVENTS)
    if newest is not None and not await feed.snapshot.wait_for(newest.seq, 600):
        raise TimeoutError("the cluster state did not catch up with the log in 600 s")


async def _replay_seconds(store: EventStore) -> tuple[float, int]:
    """A start as before snapshots: every cluster event folded from the log's beginning."""
    feed = SnapshotFeed(store)
    started = time.monotonic()
    await feed.start(catch_up_timeout=3600)
    took = time.monotonic() - started
    await feed.stop()
    return took, feed.replayed


async def _sizes(store: EventStore, prefix: str) -> dict[str, Any]:
    """Messages and MB the log and the telemetry stream hold."""
    sizes: dict[str, Any] = {}
    for name, stream in (("log", store.stream), ("telemetry", TELEMETRY_STREAM)):
        info = await store.js.stream_info(stream)
        sizes[f"{prefix}{name}_messages"] = info.state.messages
        sizes[f"{prefix}{name}_mb"] = round(info.state.bytes / 1e6, 1)
        sizes[f"{prefix}{name}_last_seq"] = info.state.last_seq
    return sizes


async def one_size(events: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gsch-history-") as folder:
        return await _one_size(events, args, Path(folder))


async def _one_size(events: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    embedded = EmbeddedNats(root / "nats")
    url = await embedded.start()
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    result: dict[str, Any] = {"events": events}
    try:
        await apply_declarations(nc, load_declarations())
        store = EventStore(nc, request_timeout=30, give_up_after=300)
        shape = HistoryShape(clusters=args.clusters, nodes_per_cluster=args.nodes_per_cluster)
        generator = HistoryGenerator(store, shape)
        snapshots = SnapshotStore(nc, keep=3, timeout=120)
        retention = None
        if args.retention_window:
            db = root / "housekeeper.sqlite"
            retention = HistoryRetention(store, snapshots, generator, db, args.retention_window)
            await retention.start()
        every = args.housekeeping_every
        started = time.monotonic()
        if every:
            # As in production: the housekeeper snapshots and compacts all along, so each
            # compaction removes only what came since the one before.
            follower = SnapshotFeed(store, snapshots)
            await generator.run(1)
            await follower.start(catch_up_timeout=3600)
            passes = PassCosts(embedded.pid)
            while generator.written < events:
                await advance(generator, retention, min(events, generator.written + every))
                await _caught_up(follower, store)
                await write_snapshot(snapshots, follower.snapshot)
                await timed_compaction(passes, store, snapshots)
            await follower.stop()
            result |= passes.summary("housekeeping_compaction_")
        else:
            await advance(generator, retention, events)
        if retention is not None:
            await retention.stop()
            result |= {"retention_window_seconds": args.retention_window,
                       "requests": generator.requests, "expired": retention.expired}  # fmt: skip
        took = time.monotonic() - started
        result |= {"written": generator.written, "write_seconds": round(took, 1),
                   "write_rate": round(generator.written / took)}  # fmt: skip
        result |= await _sizes(store, "")
        if not every:
            replay, folded = await _replay_seconds(store)
            result |= {"replay_from_start_seconds": round(replay, 2), "replayed_events": folded}
        started = time.monotonic()
        for _round in range(2):
            feed = SnapshotFeed(store, snapshots)
            await write_snapshot(snapshots, await feed.start(catch_up_timeout=3600))
            await feed.stop()
            await generator.run(generator.written + 1)  # one more tick between the two
        final = PassCosts(embedded.pid)
        result["compacted_events"] = await timed_compaction(final, store, snapshots)
        result["snapshot_and_compact_seconds"] = round(time.monotonic() - started, 1)
        if final.seconds:
            result["compact_seconds"] = round(final.seconds[0], 2)
            result["compact_server_cpu_seconds"] = round(final.server_cpu[0], 2)
        await generator.run(generator.written + args.history_tail)
        result |= await _sizes(store, "after_")
        held = await snapshots.list()
        result["snapshot_kb"] = round(held[0].size / 1e3, 1) if held else 0
        for roles in ("worker", "binder"):
            result[f"{roles}_ready_seconds"] = await _median_start(url, root, roles, args)
        result["api_first_start_seconds"] = round(
            await _time_start(url, root, "api", args.ready_timeout), 2
        )
        result["api_restart_seconds"] = await _median_start(url, root, "api", args)
    finally:
        await nc.close()
        await embedded.stop()
    return result


async def run_history_bench(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    results = []
    for events in args.history:
        result = await one_size(events, args)
        results.append(result)
        if args.output != "json":
            print(json.dumps(result))
    if args.output == "json":
        print(json.dumps(results, indent=2))
    if len(results) >= 2:
        first, last = results[0], results[-1]
        for key in ("worker_ready_seconds", "binder_ready_seconds", "api_restart_seconds"):
            ratio = last[key] / first[key] if first[key] else float("nan")
            print(f"{key}: {first[key]} s at {first['events']:,} events, {last[key]} s at"
                  f" {last['events']:,}: ratio {ratio:.2f}")  # fmt: skip
    return 0
