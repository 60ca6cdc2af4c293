"""A nats-server that enforces the bus's permissions, and clients of any role on it, each
recording what the server refused them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
from nats.aio.client import Client

from gsch.bus.identities import BusDirectory, read_seed
from gsch.bus.roles import Role
from gsch.bus.serverconf import render_embedded
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.runtime.config import Config, load_config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import default_topology_path

CLUSTERS = ("edge-a", "edge-b")


@dataclass
class Refusals:
    """The errors the server sent one client (permission violations among them)."""

    errors: list[str] = field(default_factory=list)

    async def record(self, exc: Exception) -> None:
        self.errors.append(str(exc).lower())

    def refused(self, subject: str) -> bool:
        return any("permissions violation" in e and subject.lower() in e for e in self.errors)


@dataclass
class SecuredBus:
    server: EmbeddedNats
    directory: BusDirectory
    clients: list[Client] = field(default_factory=list)

    async def connect(self, role: Role, cluster: str | None = None) -> tuple[Client, Refusals]:
        """A client with the credentials `gsch bus` made for `role` (an agent: of `cluster`)."""
        user = self.directory.find(f"agent-{cluster}" if role is Role.AGENT else role.value)
        assert user is not None, f"no identity for {role} {cluster}"
        seed = read_seed(self.directory.seed_path(user.name))
        refusals = Refusals()
        client = await nats.connect(
            self.server.url,
            nkeys_seed=str(seed.path),
            inbox_prefix=seed.inbox,
            error_cb=refusals.record,
            allow_reconnect=False,
        )
        self.clients.append(client)
        return client, refusals

    async def admin(self) -> Client:
        client, _ = await self.connect(Role.ADMIN)
        return client


@contextlib.asynccontextmanager
async def secured_bus(root: Path) -> AsyncIterator[SecuredBus]:
    """gsch's identities plus an agent for each of CLUSTERS, the server loading them, and
    the streams declared by admin."""
    directory = BusDirectory(root / "bus")
    directory.ensure_services()
    for cluster in CLUSTERS:
        directory.add(Role.AGENT, cluster=cluster)
    config_file = directory.root / "server.conf"
    config_file.write_text(render_embedded(directory.users_conf))
    server = EmbeddedNats(root, name="gsch-secured", config_file=config_file)
    await server.start()
    bus = SecuredBus(server, directory)
    try:
        await apply_declarations(await bus.admin(), load_declarations())
        yield bus
    finally:
        for client in bus.clients:
            with contextlib.suppress(nats.errors.Error):
                await client.close()
        await server.stop()


def embedded_config(tmp_path: Path, **sections: Mapping[str, object]) -> Config:
    """A secured installation on its embedded server, on the simulated demo fleet, with
    short retries; `sections` add to or replace sections of the configuration."""
    return load_config(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "api": {"listen": "127.0.0.1:0"},
            "queue": {"backoff_base": 0.05, "backoff_max": 0.2, "lease_seconds": 5},
            "simulator": {"topology": str(default_topology_path()), "bind_delay": 0.001},
            **sections,
        },
        environ={},
    )
