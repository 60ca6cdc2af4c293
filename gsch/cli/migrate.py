"""The admin connection `gsch streams migrate` works on: the configured NATS server, or the
data directory's embedded server, which the migration starts itself because the gsch that
owns it must be stopped while the log is moved."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gsch.bus.roles import Role
from gsch.cli.common import client_store
from gsch.cli.endpoints import CliError
from gsch.runtime import announce

if TYPE_CHECKING:
    from nats.aio.client import Client

    from gsch.runtime.config import Config


@contextlib.asynccontextmanager
async def admin_while_stopped(config: Config, args: argparse.Namespace) -> AsyncIterator[Client]:
    """Admin on the configured server (whose gsch processes the migration checks are gone),
    else on this data directory's embedded server, started here; refused while a gsch runs
    it."""
    if getattr(args, "nats", None) or config.nats.url:
        async with client_store(config, args, Role.ADMIN) as store:
            yield store.nc
        return
    from gsch.runtime.bus import open_bus
    from gsch.runtime.embedded import accepts_connections

    running = announce.announced(config.data_path, announce.NATS)
    port = (running or "").rsplit(":", 1)[-1]
    if running and port.isdigit() and await accepts_connections(int(port)):
        raise CliError(
            f"gsch is running with the data directory {config.data_path} (its embedded NATS"
            f" server answers at {running}): stop it (Ctrl-C or SIGTERM), then run `gsch"
            " streams migrate` again; the log is moved only while nothing uses it"
        )
    async with open_bus(config, "gsch-streams-migrate") as bus:
        yield await bus.connection(Role.ADMIN)
