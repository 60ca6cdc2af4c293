"""Upgrading a log created before compaction existed, against a real nats-server: the server
refuses to lift `deny_purge` in place, `gsch streams apply` says so and applies the rest, a
process says at start what to run, and `gsch streams migrate` moves the log into this
version's declaration with every message at its sequence, conditional appends meaning what
they meant, and each work queue continuing after what it acknowledged; killed half way, it
is finished by running it again; it refuses while a process still follows the log."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from nats.aio.client import Client
from prometheus_client import REGISTRY

from gsch.eventstore.appends import Write
from gsch.eventstore.migration import (
    COPY_STREAM,
    MigrationRefused,
    log_outdated,
    migrate_log,
    wait_until_stopped,
)
from gsch.eventstore.store import EventStore
from gsch.eventstore.streams import Declarations, apply_declarations, load_declarations
from gsch.eventstore.subjects import NodeKey, RequestKey
from gsch.model.events import (
    CapacityReserved,
    ClusterDeclared,
    LatencyReported,
    NodeDeclared,
    PodsReported,
    RequestAccepted,
    encode_event,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.runtime.config import load_config
from gsch.runtime.embedded import EmbeddedNats
from tests.support.cli import gsch
from tests.support.pipeline import running

# `streams/GSCH_EVENTS.json` before compaction existed (git show df0db2f:streams/...).
OLD_LOG = {
    "name": "GSCH_EVENTS",
    "description": "The event log: every request transition and every cluster change.",
    "subjects": ["gsch.events.>"],
    "retention": "limits",
    "storage": "file",
    "discard": "new",
    "max_msgs": -1,
    "max_bytes": -1,
    "max_age": 0,
    "max_msg_size": 1048576,
    "duplicate_window": 120000000000,
    "deny_delete": True,
    "deny_purge": True,
    "allow_direct": True,
    "allow_atomic": True,
    "num_replicas": 1,
}
DEMAND = Resources(cpu_m=250, memory=2**29, gpu=0, pods=1)
NODE = NodeKey("edge-a", "n1")
RESERVED = NODE.subject("CapacityReserved")


def old_installation() -> Declarations:
    """What an earlier version declared: the old log, the intake, and their consumers; no
    telemetry stream, no snapshot store."""
    current = load_declarations()
    streams = [OLD_LOG, *(s for s in current.streams if s["name"] == "GSCH_INTAKE")]
    return Declarations(streams, current.consumers, current.lease_seconds)


async def write_old_history(nc: Client) -> None:
    """Inventory, a request placed with its reservation, and reports on the subjects an
    earlier version wrote them to (in the log)."""
    store = EventStore(nc)
    js = nc.jetstream()
    await js.publish(
        "gsch.events.cluster.edge-a.ClusterDeclared",
        encode_event(ClusterDeclared(at=1.0, cluster="edge-a", tier="edge")),
    )
    for cpu in (8000, 16000):
        declared = NodeDeclared(
            at=1.0, cluster="edge-a", node="n1", allocatable=Resources(cpu_m=cpu), ready=True
        )
        await js.publish("gsch.events.cluster.edge-a.node.n1.NodeDeclared", encode_event(declared))
    for i in range(3):
        request = Request(
            request_id=f"r-{i}", policy=Policy.MOST_REQUESTED, mode="default",
            levels=(("edge-a",),), user_name="u", workspace_name="w", project_name="p",
            demand=DEMAND,
        )  # fmt: skip
        accepted = RequestAccepted(at=2.0, request=request, intake_seq=i, level=QueueLevel.BASE)
        await store.append(Write(RequestKey(f"r-{i}"), (accepted,)))
        reserved = CapacityReserved(
            at=2.0, cluster="edge-a", node="n1", request_id=f"r-{i}", attempt=1, amount=DEMAND
        )
        await store.append(Write(NODE, (reserved,)))
    latency = LatencyReported(at=3.0, cluster="edge-a", node="n1", to_clusters={"edge-b": 4.0})
    await js.publish("gsch.events.cluster.edge-a.latency.n1.LatencyReported", encode_event(latency))
    pods = PodsReported(at=3.0, cluster="edge-a", node="n1", pods=("ns/p",))
    await js.publish("gsch.events.cluster.edge-a.pods.n1.PodsReported", encode_event(pods))
    # Requeue one request: the retries queue takes it and acknowledges it.
    await js.publish("gsch.events.req.r-0.RequestRequeued", b"{}")
    await js.publish("gsch.events.req.r-1.RequestRequeued", b"{}")


async def messages(nc: Client) -> list[tuple[int, str, str, str | None, str]]:
    """Every message of the log: sequence, subject, body, headers, time stored."""
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    found = []
    for seq in range(info["state"]["first_seq"], info["state"]["last_seq"] + 1):
        answer = await api(nc, "STREAM.MSG.GET.GSCH_EVENTS", {"seq": seq})
        if "message" in answer:
            m = answer["message"]
            found.append((m["seq"], m["subject"], m["data"], m.get("hdrs"), m["time"]))
    return found


async def api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = json.dumps(body).encode() if body is not None else b""
    reply = await nc.request(f"$JS.API.{subject}", payload, timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def take_one_retry(nc: Client) -> int:
    """A worker's turn on the retries queue: the first requeue, acknowledged."""
    pull = await nc.jetstream().pull_subscribe_bind("gsch-retries", "GSCH_EVENTS")
    (msg,) = await pull.fetch(1, timeout=5)
    await msg.ack_sync()
    await pull.unsubscribe()
    return int(msg.metadata.sequence.stream)


async def old_log(nc: Client) -> list[tuple[int, str, str, str | None, str]]:
    report = await apply_declarations(nc, old_installation())
    assert "created" in str(report)
    await write_old_history(nc)
    await take_one_retry(nc)
    return await messages(nc)


async def test_apply_leaves_an_old_log_and_says_to_migrate(nc: Client) -> None:
    before = await old_log(nc)
    # What the server itself says about lifting the denial in place.
    refused = await api(nc, "STREAM.UPDATE.GSCH_EVENTS", load_declarations().streams[0])
    assert "can not cancel deny purge" in refused["error"]["description"]
    report = await apply_declarations(nc, load_declarations())
    assert report.outdated_log is not None
    assert "NOT updated" in str(report)
    assert "gsch streams migrate" in str(report)
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    assert info["config"]["deny_purge"] is True
    assert await messages(nc) == before
    # The rest is applied: the streams this version needs beside the log exist now.
    for stream in ("GSCH_TELEMETRY", "OBJ_GSCH_SNAPSHOTS"):
        assert "error" not in await api(nc, f"STREAM.INFO.{stream}"), stream
    outdated = await log_outdated(nc, load_declarations())
    assert outdated is not None
    assert not outdated.in_place
    assert "deny_purge" in outdated.advice()


async def test_a_process_says_at_start_what_to_run(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await old_log(nc)
    config = load_config(
        None, {"data_dir": str(tmp_path / "w"), "nats": {"url": nats_server.url}}, environ={}
    )
    with caplog.at_level(logging.ERROR, logger="gsch.runtime.service"):
        async with running(config, {"worker"}):
            pass
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("gsch streams migrate" in line and "deny_purge" in line for line in said), said
    # ...and its metrics say it until the log is moved (the alert GschEventLogOutdated).
    assert _outdated("migrate") == 1
    assert _outdated("apply") == 0
    await migrate_log(nc, load_declarations())
    async with running(config, {"worker"}):
        pass
    assert _outdated("migrate") == 0


def _outdated(action: str) -> float | None:
    return REGISTRY.get_sample_value("gsch_event_log_outdated", {"action": action})


async def test_migrate_moves_the_log_sequence_for_sequence(nc: Client) -> None:
    before = await old_log(nc)
    declarations = load_declarations()
    await apply_declarations(nc, declarations)
    node_last = (await api(nc, "STREAM.MSG.GET.GSCH_EVENTS", {"last_by_subj": RESERVED}))[
        "message"
    ]["seq"]

    report = await migrate_log(nc, declarations)

    assert report is not None
    assert report.messages == len(before)
    assert await messages(nc) == before  # every message at its sequence, headers and time kept
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    config = info["config"]
    assert (config["deny_purge"], config.get("allow_rollup_hdrs", False)) == (False, False)
    assert config["subjects"] == ["gsch.events.>"]
    assert "mirror" not in config
    assert not config.get("sealed")
    assert "error" in await api(nc, f"STREAM.INFO.{COPY_STREAM}")
    assert await log_outdated(nc, declarations) is None
    # Conditional appends mean what they meant: the node's history as it was.
    js = nc.jetstream()
    with pytest.raises(nats.js.errors.APIError):
        await js.publish(RESERVED, b"{}", headers={"Nats-Expected-Last-Subject-Sequence": "1"})
    header = {"Nats-Expected-Last-Subject-Sequence": str(node_last)}
    appended = await js.publish(RESERVED, b"{}", headers=header)
    assert appended.seq == before[-1][0] + 1
    # The retries queue goes on after what it acknowledged: the second requeue, not the first.
    pull = await js.pull_subscribe_bind("gsch-retries", "GSCH_EVENTS")
    (msg,) = await pull.fetch(1, timeout=5)
    assert msg.subject == "gsch.events.req.r-1.RequestRequeued"
    await pull.unsubscribe()
    # And the housekeeper may purge now.
    purged = await api(
        nc, "STREAM.PURGE.GSCH_EVENTS", {"filter": "gsch.events.cluster.*.latency.>"}
    )
    assert purged["purged"] == 1
    # Applying again changes nothing: the consumers' start is where the migration put it.
    again = await apply_declarations(nc, declarations)
    assert again.outdated_log is None
    assert "updated" not in str(again)
    assert await migrate_log(nc, declarations) is None


class Killed(Exception):
    pass


def killed_at(words: str) -> Any:
    def say(line: str) -> None:
        if line.startswith(words):
            raise Killed(line)

    return say


async def test_a_migration_killed_half_way_is_finished_by_running_it_again(nc: Client) -> None:
    before = await old_log(nc)
    declarations = load_declarations()
    await apply_declarations(nc, declarations)
    for moment in ("sealed", "copying", "deleted the old", "created GSCH_EVENTS"):
        with pytest.raises(Killed):
            await migrate_log(nc, declarations, say=killed_at(moment))
    # Meanwhile nothing could be appended to a log about to go, and a process starting on
    # it would be told to finish the migration.
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    assert "mirror" in info["config"]
    interrupted = await log_outdated(nc, declarations)
    assert interrupted is not None
    assert not interrupted.in_place
    assert "migration was interrupted" in interrupted.advice()
    report = await migrate_log(nc, declarations)
    assert report is not None
    assert await messages(nc) == before
    assert await log_outdated(nc, declarations) is None


async def test_migrate_refuses_while_a_process_follows_the_log(nc: Client) -> None:
    await old_log(nc)
    declarations = load_declarations()
    before = await messages(nc)
    follower = await nc.jetstream().subscribe("gsch.events.>", ordered_consumer=True)
    with pytest.raises(MigrationRefused, match="stop every worker"):
        await migrate_log(nc, declarations, stopped_within=0.5)
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    assert info["config"]["deny_purge"] is True  # refused: nothing was changed
    assert not info["config"].get("sealed")
    assert await messages(nc) == before
    await follower.unsubscribe()
    await asyncio.wait_for(wait_until_stopped(nc, declarations, 20), 30)


async def test_the_operator_migrates_an_embedded_installation(tmp_path: Path) -> None:
    """`gsch streams migrate --data-dir D` on the data directory of an earlier embedded
    installation, gsch stopped: it starts the server, moves the log, creates what is
    missing, and the installation then starts with nothing to say."""
    data = tmp_path / "data"
    server = EmbeddedNats(data)
    client = await nats.connect(await server.start())
    try:
        before = await old_log(client)
    finally:
        await client.close()
        await server.stop()
    done = await gsch("streams", "migrate", "--data-dir", str(data), timeout=120)
    assert done.code == 0, done.err
    assert "sealed GSCH_EVENTS" in done.out
    assert "stream GSCH_TELEMETRY: created" in done.out
    server = EmbeddedNats(data, config_file=data / "bus" / "server.conf")
    url = await server.start()
    try:
        admin = await nats.connect(url, nkeys_seed=str(data / "bus" / "admin.nk"))
        assert await messages(admin) == before
        await admin.close()
    finally:
        await server.stop()
    again = await gsch("streams", "migrate", "--data-dir", str(data), timeout=120)
    assert again.code == 0, again.err
    assert "needs no migration" in again.out


async def test_a_log_that_took_roll_ups_is_updated_in_place(nc: Client) -> None:
    """The log of the first bounded-history version (purges allowed, roll-up headers taken)
    needs no copy: `gsch streams apply` turns roll-ups off where it stands."""
    earlier = {**OLD_LOG, "deny_purge": False, "allow_rollup_hdrs": True}
    current = load_declarations()
    streams = [earlier, *(s for s in current.streams if s["name"] != "GSCH_EVENTS")]
    await apply_declarations(nc, Declarations(streams, current.consumers))
    await write_old_history(nc)
    before = await messages(nc)
    outdated = await log_outdated(nc, current)
    assert outdated is not None
    assert outdated.in_place
    assert "gsch streams apply" in outdated.advice()
    report = await apply_declarations(nc, current)
    assert report.outdated_log is None
    assert "allow_rollup_hdrs: True -> False" in str(report)
    info = await api(nc, "STREAM.INFO.GSCH_EVENTS")
    assert not info["config"].get("allow_rollup_hdrs")
    assert await messages(nc) == before
    assert await log_outdated(nc, current) is None
    assert await migrate_log(nc, current) is None
