"""Operators' commands for the bounded history: `snapshot` (write one now, optionally compact
behind it) and `expired show` (read an NDJSON export of expired requests back)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gsch.bus.roles import Role
from gsch.cli.common import add_command, client_store, config_of
from gsch.eventstore.guard import stream_state

if TYPE_CHECKING:
    from gsch.cli.common import Commands


def snapshot_command(commands: Commands) -> None:
    snapshot = add_command(
        commands,
        "snapshot",
        "write a cluster-state snapshot now (and compact the log behind it with --compact)",
        _snapshot,
    )
    snapshot.add_argument(
        "--compact",
        action="store_true",
        help="then purge cluster events behind the second newest good snapshot",
    )


async def _snapshot(args: argparse.Namespace) -> int:
    from gsch.clusters.feed import SnapshotFeed
    from gsch.eventstore.snapshots import SnapshotStore
    from gsch.housekeeping.housekeeper import compact, write_snapshot

    config = config_of(args)
    # As the housekeeper: the one role that writes snapshots and purges the log.
    async with client_store(config, args, Role.HOUSEKEEPER) as store:
        await stream_state(store.nc)  # a missing log is an error, not an empty snapshot
        snapshots = SnapshotStore(
            store.nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout
        )
        feed = SnapshotFeed(store, snapshots)
        state = await feed.start()
        await feed.stop()
        written = await write_snapshot(snapshots, state)
        if written is None:
            print(f"the newest snapshot already holds sequence {state.last_seq}; none written")
        else:
            header = written.header
            print(
                f"snapshot of sequence {header.seq} written to {written.slot}: {written.size}"
                f" bytes, {header.clusters} clusters, {header.nodes} nodes,"
                f" {header.reservations} reservations, sha256 {header.sha256[:16]}…"
                f" (started from {feed.started_from or 'the log'}, folded"
                f" {feed.snapshot.last_seq - feed.started_from if feed.started_from else 'all'})"
            )
        if args.compact:
            done = await compact(store, snapshots)
            if done is None:
                print("not compacted: fewer than two good snapshots above the watermark")
            else:
                print(
                    f"compacted through sequence {done.through}: {done.purged} events removed"
                    f" from {done.subjects} subjects"
                )
    return 0


def expired_command(commands: Commands) -> None:
    expired = commands.add_parser("expired", help="exports of requests removed by retention")
    actions = expired.add_subparsers(dest="action", required=True)
    show = add_command(
        actions, "show", "print the events of an NDJSON export", _show_export, connects=False
    )
    show.add_argument("file", help="an expired-YYYYMMDD.ndjson file from retention.export_dir")
    show.add_argument("request_id", nargs="?", help="only this request")


def _show_export(args: argparse.Namespace) -> int:
    from gsch.housekeeping.export import ExportError, read_export

    count = 0
    try:
        for exported in read_export(Path(args.file), args.request_id):
            sys.stdout.buffer.write(msgspec.json.encode(exported) + b"\n")
            count += 1
    except (OSError, ExportError) as exc:
        print(f"gsch expired show: {exc}", file=sys.stderr)
        return 1
    if count == 0 and args.request_id:
        print(f"gsch expired show: no events of {args.request_id!r} in {args.file}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
