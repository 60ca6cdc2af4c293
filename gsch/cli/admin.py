"""Operators' maintenance commands: `streams apply`, `projections rebuild` and `audit`."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from gsch.bus.roles import Role
from gsch.cli.common import add_command, client_store, config_of
from gsch.eventstore.guard import stream_state

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
    async with client_store(config, Role.ADMIN) as store:
        report = await apply_declarations(store.nc, declarations)
    print(report)
    return 0


def projections_command(commands: Commands) -> None:
    projections = commands.add_parser("projections", help="read model maintenance")
    actions = projections.add_subparsers(dest="action", required=True)
    add_command(actions, "rebuild", "replay the log into a new read model", _rebuild)


async def _rebuild(args: argparse.Namespace) -> int:
    from gsch.projections.projector import rebuild

    config = config_of(args)
    async with client_store(config, Role.API) as store:
        await stream_state(store.nc)  # a missing log is an error, not an empty read model
        started = time.monotonic()
        seq = await rebuild(store, config.database_path)
    took = time.monotonic() - started
    print(f"rebuilt {config.database_path} up to sequence {seq} in {took:.1f}s")
    return 0


def audit_command(commands: Commands) -> None:
    add_command(commands, "audit", "check the invariants from the event log", _audit)


async def _audit(args: argparse.Namespace) -> int:
    from gsch.audit import audit

    config = config_of(args)
    async with client_store(config, Role.API) as store:
        await stream_state(store.nc)  # a missing log is an error, not "0 requests"
        report = await audit(store)
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
