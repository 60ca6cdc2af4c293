"""The bus a process talks to: the configured NATS, or the embedded server it starts secured,
and one connection per identity (each role with its own credentials).

The embedded server is never open: on its first start gsch makes the bus directory
`<data_dir>/bus` (an NKey seed per role, mode 0600, and the users and permissions rendered
from `gsch/bus/roles.py`) and the server loads it. Commands run against it later find the
credentials where they find its URL, in the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client

from gsch.bus.identities import BusDirectory, write_private
from gsch.bus.roles import Role
from gsch.bus.serverconf import render_embedded
from gsch.runtime.config import Config
from gsch.runtime.connection import bus_directory, connect, seed_for
from gsch.runtime.embedded import EmbeddedNats

log = logging.getLogger(__name__)

EMBEDDED_CONF = "server.conf"


def embedded_bus_directory(config: Config) -> BusDirectory:
    return bus_directory(config) or BusDirectory(config.data_path / "bus")


def prepare_embedded_bus(config: Config) -> Path:
    """The embedded server's configuration file, with gsch's identities made on first use."""
    directory = embedded_bus_directory(config)
    made = directory.ensure_services()
    if made:
        log.info(
            "bus credentials created",
            extra={"dir": str(directory.root), "identities": [user.name for user in made]},
        )
    path = directory.root / EMBEDDED_CONF
    write_private(path, render_embedded(directory.users_conf).encode())
    return path


def has_log_store(config: Config) -> bool:
    """Whether the embedded server's JetStream store was ever written (a restart, not a
    first start): only a first start may create the event log on its own."""
    return (config.data_path / "nats" / "jetstream").exists()


def authenticates(config: Config) -> bool:
    options = config.nats
    return bool(
        options.user
        or options.token_file
        or options.creds_file
        or options.nkey_file
        or bus_directory(config) is not None
    )


@dataclass
class Bus:
    config: Config
    url: str
    name: str
    embedded: EmbeddedNats | None
    # The embedded server's store was new: this process may create the event log.
    first_start: bool
    _stack: AsyncExitStack
    _connections: dict[object, Client] = field(default_factory=dict)

    @property
    def may_declare(self) -> bool:
        """Whether this process may declare consumers (and, on a first start, streams):
        the owner of the embedded server is its admin; a server with no authentication
        at all stops no one."""
        return self.embedded is not None or not authenticates(self.config)

    async def connection(self, role: Role, cluster: str | None = None) -> Client:
        """The connection of `role`; roles with the same credentials share one."""
        seed = seed_for(self.config, role, cluster)
        key = seed.path if seed is not None else None
        if key not in self._connections:
            client = await connect(
                self.config, self.url, f"{self.name}:{role.value}", role=role, cluster=cluster
            )
            self._stack.push_async_callback(_close, client)
            self._connections[key] = client
        return self._connections[key]


@contextlib.asynccontextmanager
async def open_bus(config: Config, name: str) -> AsyncIterator[Bus]:
    """The configured server, or the embedded one started secured; connections are drained
    and the embedded server stopped on the way out."""
    async with AsyncExitStack() as stack:
        embedded = None
        first_start = False
        url = config.nats.url
        if url is None:
            config_file = prepare_embedded_bus(config)
            first_start = not has_log_store(config)
            embedded = EmbeddedNats(
                config.data_path, config.nats.embedded_port, config_file=config_file
            )
            url = await embedded.start()
            stack.push_async_callback(embedded.stop)
        yield Bus(config, url, name, embedded, first_start, stack)


async def _close(nc: Client) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), 10)
