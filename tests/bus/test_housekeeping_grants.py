"""Housekeeping on the secured bus: the housekeeper (and no one else but admin) writes
cluster-state snapshots, raises the compaction watermark, purges the log and records
expiries; every service role reads snapshots, since each starts from one; an API, a
submitter, an agent, a worker, a binder or a notifier can do none of the housekeeping, and a
submitter or an agent cannot even read a snapshot."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client

from gsch.bus.roles import Role
from gsch.clusters.restore import newest_snapshot
from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.snapshot_codec import encode
from gsch.eventstore.appends import Write
from gsch.eventstore.compaction import compact_cluster_events
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import ExpiryKey
from gsch.model.events import NodeDeclared, RequestsExpired, decode_event, encode_event
from gsch.model.resources import Resources
from tests.support.bus import Refusals, SecuredBus, secured_bus

NODE_SUBJECT = "gsch.events.cluster.edge-a.node.n1.NodeDeclared"
ATTEMPT_TIMEOUT = 0.5


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SecuredBus]:
    async with secured_bus(tmp_path) as running:
        yield running


async def refused(client: Client, refusals: Refusals, subject: str, body: bytes) -> bool:
    """Whether the server refused `client` the request (no answer, a violation reported)."""
    with contextlib.suppress(nats.errors.TimeoutError, nats.errors.NoRespondersError):
        await client.request(subject, body, timeout=ATTEMPT_TIMEOUT)
    await client.flush()
    return refusals.refused(subject)


async def declare_node_twice(admin: Client) -> int:
    """Two declarations of one node: compaction may remove the first. Returns the last seq."""
    js = admin.jetstream()
    for cpu in (1000, 2000):
        event = NodeDeclared(
            at=1.0, cluster="edge-a", node="n1", allocatable=Resources(cpu_m=cpu), ready=True
        )
        ack = await js.publish(NODE_SUBJECT, encode_event(event))
    return int(ack.seq)


async def test_the_housekeeper_keeps_house_and_every_service_reads_what_it_wrote(
    bus: SecuredBus,
) -> None:
    admin = await bus.admin()
    last = await declare_node_twice(admin)
    keeper, keeper_refusals = await bus.connect(Role.HOUSEKEEPER)
    state = ClusterSnapshot()
    for seq in range(1, last + 1):
        stored = await admin.jetstream().get_msg("GSCH_EVENTS", seq)
        state.apply(decode_event(stored.data or b""), seq)
    written = SnapshotStore(keeper)
    for _ in range(2):  # compaction stays one snapshot behind the newest: two are needed
        blob, header = encode(state, 1.0)
        await written.write(blob, header.seq, header.created_at)
    assert await written.raise_watermark(last) == last
    keeper_store = EventStore(keeper)
    done = await compact_cluster_events(keeper_store, last)
    assert done.purged == 1  # the first declaration; the subject's last message stays
    expiry = RequestsExpired(at=1.0, requests=(), forget_before=0.0)
    await keeper_store.append(Write(ExpiryKey("20250101"), (expiry,)))
    assert keeper_refusals.errors == []
    for role in (Role.WORKER, Role.BINDER, Role.API, Role.NOTIFIER, Role.HOUSEKEEPER):
        reader, refusals = await bus.connect(role)
        restored = await newest_snapshot(SnapshotStore(reader))
        assert restored.seq == last
        assert restored.snapshot.cluster("edge-a").node("n1").allocatable.cpu_m == 2000
        assert refusals.errors == [], role


HOUSEKEEPING = {
    "purge the log": ("$JS.API.STREAM.PURGE.GSCH_EVENTS", json.dumps({"filter": NODE_SUBJECT})),
    "write a snapshot chunk": ("$O.GSCH_SNAPSHOTS.C.forged", "x"),
    "write snapshot metadata": ("$O.GSCH_SNAPSHOTS.M.Y2x1c3Rlci1zdGF0ZS4w", "{}"),
    "purge the snapshots": ("$JS.API.STREAM.PURGE.OBJ_GSCH_SNAPSHOTS", ""),
    "record an expiry": ("gsch.events.expired.20250101.RequestsExpired", "{}"),
}


@pytest.mark.parametrize(
    "role", [Role.API, Role.SUBMITTER, Role.AGENT, Role.WORKER, Role.BINDER, Role.NOTIFIER]
)
async def test_no_one_else_keeps_house(bus: SecuredBus, role: Role) -> None:
    admin = await bus.admin()
    last = await declare_node_twice(admin)
    client, refusals = await bus.connect(role, "edge-a" if role is Role.AGENT else None)
    for what, (subject, body) in HOUSEKEEPING.items():
        assert await refused(client, refusals, subject, body.encode()), (role, what)
    info = await admin.jetstream().stream_info("GSCH_EVENTS")
    assert (info.state.messages, info.state.last_seq) == (2, last)
    snapshots = await admin.jetstream().stream_info("OBJ_GSCH_SNAPSHOTS")
    assert snapshots.state.messages == 0


@pytest.mark.parametrize("role", [Role.SUBMITTER, Role.AGENT])
async def test_submitters_and_agents_cannot_read_snapshots(bus: SecuredBus, role: Role) -> None:
    client, refusals = await bus.connect(role, "edge-a" if role is Role.AGENT else None)
    for subject in (
        "$JS.API.STREAM.INFO.OBJ_GSCH_SNAPSHOTS",
        "$JS.API.DIRECT.GET.OBJ_GSCH_SNAPSHOTS.$O.GSCH_SNAPSHOTS.M.Y2x1c3Rlci1zdGF0ZS4w",
        "$JS.API.CONSUMER.CREATE.OBJ_GSCH_SNAPSHOTS",
    ):
        assert await refused(client, refusals, subject, b""), subject
