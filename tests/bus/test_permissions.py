"""The attacks of issue 11 against a real nats-server that enforces the bus's permissions:
each is refused by the server and changes nothing. (On an open server, as before, each of
them succeeded.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client

from gsch.bus.roles import Role
from gsch.model.events import ClusterDeclared, NodeDeclared, encode_event
from gsch.model.resources import Resources
from tests.support.bus import SecuredBus, secured_bus

ATTEMPT_TIMEOUT = 0.5


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SecuredBus]:
    async with secured_bus(tmp_path) as running:
        yield running


async def attempt(client: Client, subject: str, body: bytes = b"") -> bytes | None:
    """A request the server may refuse: its answer, or None when none came."""
    try:
        reply = await client.request(subject, body, timeout=ATTEMPT_TIMEOUT)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return None
    return bytes(reply.data)


async def settled(client: Client) -> None:
    """Let the server's answer to what was just sent arrive (a refusal is asynchronous)."""
    await client.flush()
    await asyncio.sleep(0.1)


async def events_last_seq(admin: Client) -> int:
    return int((await admin.jetstream().stream_info("GSCH_EVENTS")).state.last_seq)


async def intake_messages(admin: Client) -> int:
    return int((await admin.jetstream().stream_info("GSCH_INTAKE")).state.messages)


FORGED_EVENTS = {
    # A million cores on a node: a parked 1 EiB request would be bound on it.
    "gsch.events.cluster.edge-a.node.n1.NodeDeclared": encode_event(
        NodeDeclared(
            at=1.0, cluster="edge-a", node="n1", allocatable=Resources(cpu_m=10**9, memory=2**60)
        )
    ),
    # A bound request's node shows nothing reserved.
    "gsch.events.cluster.edge-a.node.n1.CapacityReleased": b"{}",
    # An accepted-and-placed ClusterRoleBinding the intake would have rejected.
    "gsch.events.req.evil-1.RequestAccepted": b"{}",
    "gsch.events.req.evil-1.PlacementCommitted": b"{}",
    # Every cluster not ready: all scheduling stops.
    "gsch.events.cluster.edge-a.ClusterDeclared": encode_event(
        ClusterDeclared(at=1.0, cluster="edge-a", tier="edge", ready=False)
    ),
}


async def test_no_credentials_no_connection(bus: SecuredBus) -> None:
    """With no credentials a client cannot even connect, so it can neither append events,
    nor pull, purge or delete anything, nor cancel anyone's request on gsch.cancel."""
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(bus.server.url, allow_reconnect=False, connect_timeout=2)


async def test_a_submitter_submits_and_cancels(bus: SecuredBus) -> None:
    client, refusals = await bus.connect(Role.SUBMITTER)
    js = client.jetstream(timeout=2)
    request = await js.publish("gsch.requests", b"{}", headers={"Nats-Msg-Id": "r-1"})
    cancel = await js.publish("gsch.cancel", b'{"request_id": "r-1"}')
    assert (request.stream, cancel.stream) == ("GSCH_INTAKE", "GSCH_INTAKE")
    assert refusals.errors == []


@pytest.mark.parametrize("subject", sorted(FORGED_EVENTS))
async def test_a_submitter_cannot_append_events(bus: SecuredBus, subject: str) -> None:
    admin = await bus.admin()
    before = await events_last_seq(admin)
    client, refusals = await bus.connect(Role.SUBMITTER)
    assert await attempt(client, subject, FORGED_EVENTS[subject]) is None
    await settled(client)
    assert refusals.refused(subject)
    assert await events_last_seq(admin) == before


# What a submitter must never do to the queues and the log, and how to tell it did not.
QUEUE_ATTACKS = {
    "pull from gsch-intake": ("$JS.API.CONSUMER.MSG.NEXT.GSCH_INTAKE.gsch-intake", b'{"batch":1}'),
    "acknowledge on gsch-intake": ("$JS.ACK.GSCH_INTAKE.gsch-intake.1.1.1.1.0", b"+ACK"),
    "purge GSCH_INTAKE": ("$JS.API.STREAM.PURGE.GSCH_INTAKE", b""),
    "cap GSCH_EVENTS": (
        "$JS.API.STREAM.UPDATE.GSCH_EVENTS",
        json.dumps({"name": "GSCH_EVENTS", "subjects": ["gsch.events.>"], "max_msgs": 1}).encode(),
    ),
    "delete GSCH_EVENTS": ("$JS.API.STREAM.DELETE.GSCH_EVENTS", b""),
    "delete the intake consumer": ("$JS.API.CONSUMER.DELETE.GSCH_INTAKE.gsch-intake", b""),
    "create a durable consumer": (
        "$JS.API.CONSUMER.DURABLE.CREATE.GSCH_INTAKE.thief",
        json.dumps({"stream_name": "GSCH_INTAKE", "config": {"durable_name": "thief"}}).encode(),
    ),
    "read the log": ("$JS.API.DIRECT.GET.GSCH_EVENTS", b'{"seq": 1}'),
}


@pytest.mark.parametrize("attack", sorted(QUEUE_ATTACKS))
async def test_a_submitter_cannot_take_purge_cap_or_delete(bus: SecuredBus, attack: str) -> None:
    admin = await bus.admin()
    client, refusals = await bus.connect(Role.SUBMITTER)
    await client.jetstream().publish("gsch.requests", b"{}", headers={"Nats-Msg-Id": "r-1"})
    events_config = (await admin.jetstream().stream_info("GSCH_EVENTS")).config
    subject, body = QUEUE_ATTACKS[attack]
    assert await attempt(client, subject, body) is None
    await settled(client)
    assert refusals.refused(subject)
    # Nothing happened: the request is still queued for a worker, the log is as declared.
    assert await intake_messages(admin) == 1
    after = (await admin.jetstream().stream_info("GSCH_EVENTS")).config
    assert after.max_msgs == events_config.max_msgs
    consumer = await admin.jetstream().consumer_info("GSCH_INTAKE", "gsch-intake")
    assert consumer.num_pending == 1


async def test_a_submitter_cannot_read_others_requests_or_replies(bus: SecuredBus) -> None:
    client, refusals = await bus.connect(Role.SUBMITTER)
    worker = bus.directory.find("worker")
    assert worker is not None
    seen: list[bytes] = []

    async def spy(msg: nats.aio.msg.Msg) -> None:
        seen.append(msg.data)

    for subject in ("gsch.requests", f"{worker.inbox}.>", "gsch.events.>"):
        await client.subscribe(subject, cb=spy)
        await settled(client)
        assert refusals.refused(subject)
    other, _ = await bus.connect(Role.SUBMITTER)
    await other.jetstream().publish("gsch.requests", b'{"secret": 1}')
    await settled(client)
    assert seen == []


@pytest.mark.parametrize("role", [Role.WORKER, Role.API, Role.BINDER, Role.AGENT, Role.HOUSEKEEPER])
async def test_only_admin_manages_streams_and_consumers(bus: SecuredBus, role: Role) -> None:
    client, refusals = await bus.connect(role, "edge-a" if role is Role.AGENT else None)
    admin = await bus.admin()
    # Purging the log is housekeeping, the housekeeper's (tests/bus/test_housekeeping_grants.py).
    purge_log = () if role is Role.HOUSEKEEPER else (("$JS.API.STREAM.PURGE.GSCH_EVENTS", b""),)
    for subject, body in (
        *purge_log,
        ("$JS.API.STREAM.PURGE.GSCH_INTAKE", b""),
        QUEUE_ATTACKS["cap GSCH_EVENTS"],
        ("$JS.API.STREAM.DELETE.GSCH_INTAKE", b""),
        ("$JS.API.CONSUMER.DELETE.GSCH_EVENTS.gsch-binder", b""),
        QUEUE_ATTACKS["create a durable consumer"],
        (
            "$JS.API.CONSUMER.CREATE.GSCH_EVENTS.gsch-binder",
            json.dumps({"stream_name": "GSCH_EVENTS", "config": {"name": "gsch-binder"}}).encode(),
        ),
    ):
        assert await attempt(client, subject, body) is None, subject
        await settled(client)
        assert refusals.refused(subject), subject
    assert (await admin.jetstream().stream_info("GSCH_EVENTS")).config.max_msgs == -1
    assert await admin.jetstream().consumer_info("GSCH_EVENTS", "gsch-binder")


async def test_the_ephemeral_subject_refuses_a_durable_consumer(bus: SecuredBus) -> None:
    """Services may create ordered (ephemeral) consumers on the log, on the one subject
    where the server itself refuses a durable name."""
    client, _ = await bus.connect(Role.WORKER)
    body = {"stream_name": "GSCH_EVENTS", "config": {"durable_name": "gsch-binder"}}
    answer = await attempt(client, "$JS.API.CONSUMER.CREATE.GSCH_EVENTS", json.dumps(body).encode())
    assert answer is not None
    assert json.loads(answer)["error"]["err_code"] == 10020  # ephemeral with a durable name


async def test_a_worker_cannot_declare_inventory(bus: SecuredBus) -> None:
    """Appends are granted per event type: a worker reserves capacity, it never declares it."""
    client, refusals = await bus.connect(Role.WORKER)
    subject = "gsch.events.cluster.edge-a.node.n1.NodeDeclared"
    assert await attempt(client, subject, FORGED_EVENTS[subject]) is None
    await settled(client)
    assert refusals.refused(subject)


async def test_an_agent_writes_and_answers_for_its_own_cluster_only(bus: SecuredBus) -> None:
    agent_a, refusals = await bus.connect(Role.AGENT, "edge-a")
    binder, _ = await bus.connect(Role.BINDER)
    own = "gsch.events.cluster.edge-a.node.n1.NodeDeclared"
    ack = await attempt(agent_a, own, FORGED_EVENTS[own])
    assert ack is not None
    assert msgspec.json.decode(ack)["stream"] == "GSCH_EVENTS"
    # Cluster B's inventory, a reservation, B's heartbeat: refused.
    for subject in (
        "gsch.events.cluster.edge-b.node.n1.NodeDeclared",
        "gsch.events.cluster.edge-b.ClusterDeclared",
        "gsch.events.cluster.edge-a.node.n1.CapacityReleased",
        "gsch.agent.edge-b.heartbeat",
    ):
        await agent_a.publish(subject, b"{}")
        await settled(agent_a)
        assert refusals.refused(subject), subject

    async def answer(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(b"from edge-a")

    # A's bindings reach A and A answers them; B's cannot even be listened to.
    await agent_a.subscribe("gsch.agent.edge-a.bind", cb=answer)
    await agent_a.subscribe("gsch.agent.edge-b.bind", cb=answer)
    await settled(agent_a)
    assert refusals.refused("gsch.agent.edge-b.bind")
    reply = await binder.request("gsch.agent.edge-a.bind", b"{}", timeout=2)
    assert reply.data == b"from edge-a"
    assert await attempt(binder, "gsch.agent.edge-b.bind") is None


async def test_an_agent_cannot_create_consumers(bus: SecuredBus) -> None:
    """A push consumer's deliveries can be aimed at any subject, `gsch.requests` included
    (measured: an open server stores them as requests), so agents read by direct get only."""
    agent, refusals = await bus.connect(Role.AGENT, "edge-a")
    admin = await bus.admin()
    body = {"stream_name": "GSCH_EVENTS", "config": {"deliver_subject": "gsch.requests"}}
    subject = "$JS.API.CONSUMER.CREATE.GSCH_EVENTS"
    assert await attempt(agent, subject, json.dumps(body).encode()) is None
    await settled(agent)
    assert refusals.refused(subject)
    assert await intake_messages(admin) == 0


async def test_no_one_can_roll_the_log_up(bus: SecuredBus) -> None:
    """A roll-up header replaces earlier messages (`all`: the whole stream). The log accepts
    none, so no role can wipe it from a subject it may write (reports, which are current
    values, have a stream of their own that keeps one per subject)."""
    admin = await bus.admin()
    await admin.jetstream().publish("gsch.events.req.r-1.RequestAccepted", b"{}")
    agent, _ = await bus.connect(Role.AGENT, "edge-a")
    subject = "gsch.events.cluster.edge-a.ClusterDeclared"
    forged = FORGED_EVENTS[subject]
    reply = await agent.request(subject, forged, timeout=2, headers={"Nats-Rollup": "all"})
    assert "error" in json.loads(reply.data)
    info = await admin.jetstream().stream_info("GSCH_EVENTS")
    assert (info.state.messages, info.state.last_seq) == (1, 1)


async def test_an_agent_reports_telemetry_for_its_own_cluster_only(bus: SecuredBus) -> None:
    agent, refusals = await bus.connect(Role.AGENT, "edge-a")
    own = "gsch.telemetry.edge-a.latency.n1.LatencyReported"
    ack = await attempt(agent, own, b"{}")
    assert ack is not None
    assert msgspec.json.decode(ack)["stream"] == "GSCH_TELEMETRY"
    for other in (
        "gsch.telemetry.edge-b.latency.n1.LatencyReported",
        "gsch.telemetry.edge-b.pods.n1.PodsReported",
    ):
        assert await attempt(agent, other, b"{}") is None
        await settled(agent)
        assert refusals.refused(other), other
