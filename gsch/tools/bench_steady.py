"""`gsch bench --steady HOURS`: storage under a steady load, time compressed.

A fleet reports latency every 10 s of simulated time and requests live short lifecycles;
the housekeeping the housekeeper does (snapshot, compaction, retention of requests finished
more than HOURS ago) runs every simulated hour, with the projector keeping its read model in
the same process. The stream's bytes and messages and the SQLite file's size are reported at
1x, 2x and 4x the retention window: with history bounded, they level off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors

from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.eventstore.subjects import TELEMETRY_STREAM
from gsch.housekeeping.housekeeper import write_snapshot
from gsch.housekeeping.retention import Retention
from gsch.logs import setup_logging
from gsch.projections.projector import Projector
from gsch.runtime.config import RetentionConfig
from gsch.runtime.embedded import EmbeddedNats
from gsch.tools.history import TICK, HistoryGenerator, HistoryShape
from gsch.tools.pass_costs import PassCosts, timed_compaction

HOUR = 3600.0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def _disk(folder: Path) -> int:
    """Bytes the server's store takes on disk (blocks keep removed messages' space until
    the server compacts them)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def _caught_up(projector: Projector, store: EventStore) -> None:
    if not await projector.wait_for(await store.newest_seq(), 600):
        raise TimeoutError("the read model did not catch up with the log in 600 s")


async def run_steady_bench(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="gsch-steady-") as folder:
        rows = await _run(args, Path(folder))
    print(json.dumps(rows, indent=2) if args.output == "json" else "\n".join(map(str, rows)))
    return 0


async def _run(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    window = args.steady * HOUR
    embedded = EmbeddedNats(root / "nats")
    url = await embedded.start()
    nc = await nats.connect(url, max_reconnect_attempts=-1)
    rows: list[dict[str, Any]] = []
    try:
        await apply_declarations(nc, load_declarations())
        store = EventStore(nc, request_timeout=30, give_up_after=300)
        snapshots = SnapshotStore(nc, keep=3, timeout=120)
        shape = HistoryShape(
            clusters=args.clusters, nodes_per_cluster=args.nodes_per_cluster,
            placements_per_tick=20, lifetime_ticks=30, days=4 * window / 86400,
        )  # fmt: skip
        generator = HistoryGenerator(store, shape)
        db = root / "readmodel.sqlite"
        projector = Projector(store, db, snapshots)
        await projector.open()
        stop = asyncio.Event()
        projecting = asyncio.create_task(projector.run(stop))
        retention = Retention(
            RetentionConfig(finished_requests=window, expired_ids=window, batch=100_000),
            store, db, clock=lambda: generator.clock,
        )  # fmt: skip
        feed = SnapshotFeed(store, snapshots)
        await generator.run(1)  # the fleet
        await feed.start()
        started = generator.clock
        marks = [1, 2, 4]
        # Housekeeping every simulated hour, or eight times per window if that is shorter.
        ticks = max(1, int(min(HOUR, window / 8) / TICK))
        wall = time.monotonic()
        compactions, expiries = PassCosts(embedded.pid), PassCosts(embedded.pid)
        while marks:
            await generator.run(generator.written + ticks * generator.events_per_tick)
            await _caught_up(projector, store)
            await write_snapshot(snapshots, feed.snapshot)
            await timed_compaction(compactions, store, snapshots)
            expired = await expiries.timed(retention.run_once())
            expiries.removed.append(expired.purged_events)
            while marks and generator.clock - started >= marks[0] * window:
                await _caught_up(projector, store)
                info = await store.js.stream_info(store.stream)
                reports = await store.js.stream_info(TELEMETRY_STREAM)
                rows.append({
                    "windows": marks.pop(0), "simulated_hours": round(
                        (generator.clock - started) / HOUR, 1),
                    "events_written": generator.written, "stream_messages": info.state.messages,
                    "stream_mb": round(info.state.bytes / 1e6, 2),
                    "telemetry_messages": reports.state.messages,
                    "telemetry_mb": round(reports.state.bytes / 1e6, 2),
                    "store_disk_mb": round(_disk(root / "nats") / 1e6, 2),
                    "sqlite_mb": round(_size(db) / 1e6, 2),
                    "wall_seconds": round(time.monotonic() - wall),
                    **compactions.summary("compaction_"), **expiries.summary("retention_"),
                })  # fmt: skip
        stop.set()
        await projecting
        await feed.stop()
        await projector.close()
    finally:
        with contextlib.suppress(nats.errors.Error):
            await nc.close()
        await embedded.stop()
    return rows
