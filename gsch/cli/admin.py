"""Operators' maintenance commands: `streams apply`, `projections rebuild` and `audit`."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from gsch.cli.common import add_command, client_store, config_of

if TYPE_CHECKING:
    from gsch.cli.common import Commands


def streams_command(commands: Commands) -> None:
    streams = commands.add_parser("streams", help="stream declarations")
    actions = streams.add_subparsers(dest="action", required=True)
    add_command(actions, "apply", "create or update streams and consumers", _streams_apply)


async def _streams_apply(args: argparse.Namespace) -> int:
    from gsch.eventstore.streams import apply_declarations, load_declarations

    config = config_of(args)
    declarations = load_declarations(
        replicas=config.nats.replicas, lease_seconds=config.queue.lease_seconds
    )
    async with client_store(config) as store:
        report = await apply_declarations(store.nc, declarations)
    print(report)
    return 0


def projections_command(commands: Commands) -> None:
    projections = commands.add_parser("projections", help="read model maintenance")
    actions = projections.add_subparsers(dest="action", required=True)
    add_command(actions, "rebuild", "replay the log into a new read model", _rebuild)


async def _rebuild(args: argparse.Namespace) -> int:
    from gsch.eventstore.snapshots import SnapshotStore
    from gsch.projections.projector import rebuild

    config = config_of(args)
    async with client_store(config) as store:
        started = time.monotonic()
        snapshots = SnapshotStore(store.nc, keep=config.snapshots.keep)
        seq = await rebuild(store, config.database_path, snapshots)
    took = time.monotonic() - started
    print(f"rebuilt {config.database_path} up to sequence {seq} in {took:.1f}s")
    return 0


def audit_command(commands: Commands) -> None:
    add_command(commands, "audit", "check the invariants from the event log", _audit)


async def _audit(args: argparse.Namespace) -> int:
    from gsch.audit import audit
    from gsch.eventstore.snapshots import SnapshotStore

    config = config_of(args)
    async with client_store(config) as store:
        # From the newest good snapshot when there is one: on a compacted log the cluster
        # events behind it are gone.
        snapshots = SnapshotStore(store.nc, keep=config.snapshots.keep)
        report = await audit(store, snapshots=snapshots)
    print(report.checked())
    print(report.summary())
    for title, items in (
        ("placed twice", report.double_placements),
        ("overcommitted", report.overcommits),
        ("reserved twice", report.duplicate_reservations),
        ("still reserved", report.leaked_reservations),
        ("reserved without a history", report.orphan_reservations),
    ):
        for item in items[:20]:
            print(f"  {title}: {item}")
    failed = (
        report.double_placements
        or report.overcommits
        or report.leaked_reservations
        or report.orphan_reservations
    )
    return 0 if not failed else 1
