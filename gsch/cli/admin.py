"""Operators' maintenance commands: `streams apply`, `projections rebuild`, `audit` and
`declare` (projects and workspaces as data)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gsch.bus.roles import Role
from gsch.cli.common import add_command, client_store, config_of
from gsch.cli.output import clean
from gsch.eventstore.guard import stream_state

if TYPE_CHECKING:
    from gsch.cli.common import Commands
    from gsch.eventstore.streams import Declarations
    from gsch.runtime.config import Config


def streams_command(commands: Commands) -> None:
    streams = commands.add_parser("streams", help="stream declarations")
    actions = streams.add_subparsers(dest="action", required=True)
    add_command(actions, "apply", "create or update streams and consumers", _streams_apply)
    migrate = add_command(
        actions,
        "migrate",
        "upgrade an earlier installation's streams: copy a log the server cannot change in"
        " place into this version's declaration (same sequences), then apply the rest;"
        " every gsch process must be stopped",
        _streams_migrate,
    )
    migrate.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for stopped processes' consumers to go (default: %(default)s)",
    )


async def _streams_apply(args: argparse.Namespace) -> int:
    from gsch.eventstore.streams import apply_declarations

    config = config_of(args)
    async with client_store(config, args, Role.ADMIN) as store:
        report = await apply_declarations(store.nc, _declarations(config))
    print(report)
    return 1 if report.outdated_log is not None else 0


def _declarations(config: Config) -> Declarations:
    from gsch.eventstore.streams import load_declarations

    return load_declarations(
        replicas=config.nats.replicas, lease_seconds=config.queue.lease_seconds
    )


async def _streams_migrate(args: argparse.Namespace) -> int:
    from gsch.cli.migrate import admin_while_stopped
    from gsch.eventstore.migration import migrate_log
    from gsch.eventstore.streams import apply_declarations

    config = config_of(args)
    declarations = _declarations(config)
    async with admin_while_stopped(config, args) as nc:
        migrated = await migrate_log(nc, declarations, stopped_within=args.wait, say=print)
        if migrated is None:
            print("the event log GSCH_EVENTS needs no migration")
        report = await apply_declarations(nc, declarations)
    print(report)
    return 1 if report.outdated_log is not None else 0


def projections_command(commands: Commands) -> None:
    projections = commands.add_parser("projections", help="read model maintenance")
    actions = projections.add_subparsers(dest="action", required=True)
    add_command(
        actions,
        "rebuild",
        "replay the log into a new read model (refused while an API uses it)",
        _rebuild,
    )


async def _rebuild(args: argparse.Namespace) -> int:
    from gsch.eventstore.snapshots import SnapshotStore
    from gsch.projections import lock
    from gsch.projections.projector import rebuild
    from gsch.runtime.announce import API, announced

    config = config_of(args)
    # Refused before anything is deleted, and held throughout: no API starts on a half-built
    # read model.
    with lock.rebuilding(config.database_path, announced(config.data_path, API)):
        async with client_store(config, args, Role.API) as store:
            await stream_state(store.nc)  # a missing log is an error, not an empty read model
            started = time.monotonic()
            # Clusters and live reservations come from the newest good snapshot once the
            # log has been compacted.
            snapshots = SnapshotStore(store.nc, keep=config.snapshots.keep)
            seq = await rebuild(store, config.database_path, snapshots)
    took = time.monotonic() - started
    print(f"rebuilt {config.database_path} up to sequence {seq} in {took:.1f}s")
    return 0


def audit_command(commands: Commands) -> None:
    audit = add_command(commands, "audit", "check the invariants from the event log", _audit)
    audit.add_argument(
        "--unsettled-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="a request accepted longer ago than this and still not settled is a violation"
        " (default: %(default)s)",
    )


async def _audit(args: argparse.Namespace) -> int:
    """Exit 1 on any violation: stuck requests, double placements, overcommitted nodes,
    reservations made twice or left behind."""
    from gsch.audit import audit
    from gsch.eventstore.snapshots import SnapshotStore

    config = config_of(args)
    async with client_store(config, args, Role.API) as store:
        await stream_state(store.nc)  # a missing log is an error, not "0 requests"
        # From the newest good snapshot when there is one: on a compacted log the cluster
        # events behind it are gone.
        snapshots = SnapshotStore(store.nc, keep=config.snapshots.keep)
        report = await audit(store, snapshots=snapshots)
    print(clean(report.summary()))
    print(clean(report.checked()))
    violations = report.violations(args.unsettled_after)
    for title, items in violations:
        for item in items[:20]:
            print(clean(f"  {title}: {item}"))
        if len(items) > 20:
            print(f"  {title}: … and {len(items) - 20} more")
    return 1 if violations else 0


def declare_command(commands: Commands) -> None:
    declare = add_command(
        commands, "declare", "declare projects and workspaces as data (in the log)", _declare
    )
    declare.add_argument(
        "file",
        help="YAML or JSON: {workspaces: {NAME: {uid, user_name, clusters}}, projects: {NAME:"
        " {clusters, selectors, workspace}}}; a null spec removes the declaration",
    )


async def _declare(args: argparse.Namespace) -> int:
    from gsch.runtime.tenancy import declare_from_file

    config = config_of(args)
    text = Path(args.file).read_bytes()  # noqa: ASYNC240 (a small file, before any I/O)
    async with client_store(config, args, Role.ADMIN) as store:
        for line in await declare_from_file(store, config, text):
            print(line)
    return 0
