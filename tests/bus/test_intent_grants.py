"""Commit intents on the secured bus: workers, and only workers, tell each other what their
batches are about to reserve. No other role can send one (a forged hint would still only cost
placement quality, but no one else has any business there) or read one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from gsch.bus.roles import Role
from tests.support.bus import SecuredBus, secured_bus
from tests.support.waits import eventually

INTENTS = "gsch.intents.*"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SecuredBus]:
    async with secured_bus(tmp_path) as running:
        yield running


async def listening(client: Client) -> list[bytes]:
    """What `client` receives on the intent subjects from now on."""
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg.data)

    await client.subscribe(INTENTS, cb=keep)
    await client.flush()
    return seen


async def settled(client: Client) -> None:
    """Let the server's answer to what was just sent arrive (a refusal is asynchronous)."""
    await client.flush()
    await asyncio.sleep(0.1)


async def test_workers_tell_each_other_their_intents(bus: SecuredBus) -> None:
    sender, sender_refusals = await bus.connect(Role.WORKER)
    other, other_refusals = await bus.connect(Role.WORKER)
    seen = await listening(other)
    await sender.publish("gsch.intents.worker-1", b'{"t": "done", "group": 1, "landed": true}')
    await eventually(lambda: len(seen) == 1, 5)
    assert sender_refusals.errors == []
    assert other_refusals.errors == []


@pytest.mark.parametrize(
    "role", [Role.API, Role.BINDER, Role.SUBMITTER, Role.AGENT, Role.NOTIFIER, Role.HOUSEKEEPER]
)
async def test_no_other_role_sends_or_reads_intents(bus: SecuredBus, role: Role) -> None:
    client, refusals = await bus.connect(role, "edge-a" if role is Role.AGENT else None)
    worker, _ = await bus.connect(Role.WORKER)
    worker_saw = await listening(worker)
    role_saw = await listening(client)
    await settled(client)
    assert refusals.refused(INTENTS)
    await client.publish("gsch.intents.forged", b'{"t": "intent", "group": 1, "reservations": []}')
    await settled(client)
    assert refusals.refused("gsch.intents.forged")
    await worker.publish("gsch.intents.worker-1", b'{"t": "done", "group": 1, "landed": true}')
    await eventually(lambda: len(worker_saw) == 1, 5)  # the worker's own arrives; no forgery
    await settled(client)
    assert role_saw == []
