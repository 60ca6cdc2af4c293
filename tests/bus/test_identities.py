"""NKey identities: seeds only their owner can read, a registry, users rendered for
nats-server, and `gsch bus add` taking effect on a running embedded server."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path

import nats
import nats.errors
import pytest

from gsch.bus.identities import BusDirectory, IdentityError, new_seed, public_key_of
from gsch.bus.roles import Role
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.runtime.bus import open_bus
from gsch.runtime.config import load_config
from gsch.runtime.connection import NatsConnectError, connect
from gsch.runtime.embedded import find_binary


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_gsch_identities_are_made_once_and_readable_by_their_owner_only(tmp_path: Path) -> None:
    directory = BusDirectory(tmp_path / "bus")
    made = directory.ensure_services()
    assert sorted(user.name for user in made) == [
        "admin", "api", "binder", "housekeeper", "notifier", "submitter", "worker"
    ]  # fmt: skip
    assert mode(directory.root) == 0o700
    for user in made:
        assert mode(directory.seed_path(user.name)) == 0o600
        assert public_key_of(directory.seed_path(user.name).read_bytes()) == user.nkey
    assert mode(directory.users_conf) == 0o600
    assert directory.ensure_services() == []  # a restart keeps its keys
    assert [u.nkey for u in directory.users()] == [u.nkey for u in made]


def test_agents_and_submitters_are_added_and_removed(tmp_path: Path) -> None:
    directory = BusDirectory(tmp_path / "bus")
    directory.ensure_services()
    agent = directory.add(Role.AGENT, cluster="edge.a")
    assert agent.name == "agent-edge%2Ea"  # one subject token, as on the bus
    assert directory.seed_path(agent.name).exists()
    with pytest.raises(IdentityError, match="exists already"):
        directory.add(Role.AGENT, cluster="edge.a")
    with pytest.raises(IdentityError, match="one cluster"):
        directory.add(Role.AGENT)
    # A submitter who made their own key pair hands over only the public key.
    key = public_key_of(new_seed())
    alice = directory.add(Role.SUBMITTER, name="alice", public_key=key)
    assert not directory.seed_path(alice.name).exists()
    assert key in directory.users_conf.read_text()
    with pytest.raises(IdentityError, match="not a user NKey public key"):
        directory.add(Role.SUBMITTER, name="bob", public_key="UNOTAKEY")
    with pytest.raises(IdentityError, match="use 1-64"):
        directory.add(Role.SUBMITTER, name="../etc")
    directory.remove(alice.name)
    assert key not in directory.users_conf.read_text()


def test_nats_server_accepts_the_rendered_users(tmp_path: Path) -> None:
    directory = BusDirectory(tmp_path / "bus")
    directory.ensure_services()
    directory.add(Role.AGENT, cluster="edge-a")
    config = directory.root / "check.conf"
    config.write_text("include users.conf\n")
    checked = subprocess.run(
        [find_binary(), "-t", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


async def test_an_agent_added_to_a_running_embedded_server_can_connect(tmp_path: Path) -> None:
    config = load_config(None, {"data_dir": str(tmp_path / "data")}, environ={})
    async with open_bus(config, "test") as bus:
        await apply_declarations(await bus.connection(Role.ADMIN), load_declarations())
        added = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsch", "bus", "add", "agent", "--cluster", "edge-x",
            "--data-dir", str(config.data_path),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await added.communicate()
        assert added.returncode == 0
        assert b"reloaded its users" in output
        for _ in range(50):  # the server reloads asynchronously
            try:
                agent = await connect(
                    config, bus.url, "agent", role=Role.AGENT, cluster="edge-x", patience=0
                )
                break
            except NatsConnectError:  # refused until the server has reloaded
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the new agent was never let in")
        await agent.jetstream().publish("gsch.events.cluster.edge-x.ClusterDeclared", b"{}")
        await agent.close()
        with pytest.raises(nats.errors.Error):
            await nats.connect(bus.url, allow_reconnect=False, connect_timeout=2)
