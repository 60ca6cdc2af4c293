"""Retention of finished requests: removed from the log and the read model after the
retention, exported first when asked, answered with 410 and a reason; what is not final is
never touched; a rebuild from the trimmed log gives the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gsch.api.app import make_app
from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import request_history
from gsch.housekeeping.export import read_export
from gsch.housekeeping.housekeeper import compact, write_snapshot
from gsch.housekeeping.retention import Retention
from gsch.projections.projector import Projector, rebuild
from gsch.runtime.config import RetentionConfig
from tests.support.scenario import Log, dump, running, serving

DAY = 86400.0


async def _lifecycles(log: Log) -> int:
    await log.cluster("c1", "edge")
    await log.node("c1", "n1")
    await log.node("c1", "n2")
    await log.accept("done")  # bound, workload finished: ends at once
    await log.claim("done")
    await log.commit("done", "c1", "n1")
    await log.bind("done", "c1", "n1")
    await log.finish("done")
    await log.requeue("done", "c1", "n1", 2, "finished")  # its capacity comes back
    await log.reject("bad", "workload.kind: 'Foo' is not an allowed kind", "workload")
    await log.accept("running")  # bound, still running: kept however old
    await log.claim("running")
    await log.commit("running", "c1", "n2")
    await log.bind("running", "c1", "n2")
    return await log.accept("waiting")  # queued: kept however old


async def _get(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
    response = await client.get(path)
    return response.status, await response.json()


async def test_expired_requests_leave_the_log_and_answer_410(
    store: EventStore, tmp_path: Path
) -> None:
    log = Log(store)
    last = await _lifecycles(log)
    db = tmp_path / "read.sqlite"
    now = log.at() + 8 * DAY
    config = RetentionConfig(finished_requests=7 * DAY, export_dir=str(tmp_path / "export"))
    async with running(Projector(store, db)) as projector:
        assert await projector.wait_for(last, 10)
        done = await Retention(config, store, db, clock=lambda: now).run_once()
        assert done.expired == 2
        assert done.export is not None
        assert await projector.wait_for(await store.newest_seq(), 10)
        async with serving(make_app(projector, store=store)) as client:
            for gone in ("done", "bad"):
                status, body = await _get(client, f"/v1/requests/{gone}")
                assert status == 410, body
                assert "expired" in body["error"]["reason"]
                assert "retention.finished_requests" in body["error"]["reason"]
                status, _ = await _get(client, f"/v1/requests/{gone}/events")
                assert status == 410
            for kept in ("running", "waiting"):
                status, _ = await _get(client, f"/v1/requests/{kept}")
                assert status == 200
            status, _ = await _get(client, "/v1/requests/never-was")
            assert status == 404
            status, nodes = await _get(client, "/v1/clusters/c1/nodes")
            reserved = {n["name"]: n["reservations"] for n in nodes["items"]}
            assert reserved == {"n1": 0, "n2": 1}
    for gone in ("done", "bad"):
        assert await store.read(request_history(gone)) == []
    assert len(await store.read(request_history("running"))) == 4
    exported = list(read_export(done.export))
    assert {e.request_id for e in exported} == {"done", "bad"}
    assert [e.type for e in exported if e.request_id == "done"][:2] == [
        "RequestAccepted", "RequestClaimed",
    ]  # fmt: skip
    # A second pass finds nothing more to do.
    again = await Retention(config, store, db, clock=lambda: now).run_once()
    assert again.expired == 0


async def test_rebuild_after_compaction_and_retention_gives_the_same_answers(
    store: EventStore, tmp_path: Path
) -> None:
    """What a rebuild yields: every retained request, the 410 of every expired id, and the
    clusters, nodes and live reservations (from the newest snapshot plus the log after it).
    Not kept: rows of reservations released before the last expiry (never shown)."""
    log = Log(store)
    await _lifecycles(log)
    snapshots = SnapshotStore(store.nc, keep=3, timeout=10)
    db = tmp_path / "live.sqlite"
    now = log.at() + 8 * DAY
    async with running(Projector(store, db, snapshots)) as projector:
        for _round in range(3):
            await log.node("c1", "n3", cpu_m=1000 + _round)  # move the cluster state on
            feed = SnapshotFeed(store, snapshots)
            await write_snapshot(snapshots, await feed.start())
            await feed.stop()
        assert await compact(store, snapshots) is not None
        config = RetentionConfig(finished_requests=7 * DAY)
        await Retention(config, store, db, clock=lambda: now).run_once()
        assert await projector.wait_for(await store.newest_seq(), 10)
    live = await dump(db)
    rebuilt_path = tmp_path / "rebuilt.sqlite"
    await rebuild(store, rebuilt_path, snapshots)
    rebuilt = await dump(rebuilt_path)
    for table in ("requests", "request_placements", "request_events", "expired_requests"):
        assert rebuilt[table] == live[table], table
    # Cluster rows alike but for their `last_seq` guards (the last column; never shown).
    for table in ("clusters", "nodes"):
        assert [r[:-1] for r in rebuilt[table]] == [r[:-1] for r in live[table]], table
    active = [r for r in live["reservations"] if r[8]]
    assert [r[:3] + r[4:9] for r in rebuilt["reservations"]] == [r[:3] + r[4:9] for r in active]
    rebuilt_projector = Projector(store, rebuilt_path, snapshots)
    async with (
        running(rebuilt_projector),
        serving(make_app(rebuilt_projector, store=store)) as client,
    ):
        status, _ = await _get(client, "/v1/requests/done")
        assert status == 410
        status, body = await _get(client, "/v1/clusters/c1/nodes")
        assert {n["name"]: n["reservations"] for n in body["items"]} == {
            "n1": 0, "n2": 1, "n3": 0,
        }  # fmt: skip


async def test_a_request_retried_leaves_the_log_whole(store: EventStore, tmp_path: Path) -> None:
    """Claimed and committed twice: those subjects hold two events each, removed one purge
    at a time (a purge of several makes every consumer recount), all of them."""
    log = Log(store)
    await log.cluster("c1", "edge")
    await log.node("c1", "n1")
    await log.accept("retried")
    await log.claim("retried")
    await log.commit("retried", "c1", "n1")
    await log.requeue("retried", "c1", "n1", 2, "binding failed")
    await log.claim("retried", attempt=2)
    await log.commit("retried", "c1", "n1", attempt=2)
    await log.bind("retried", "c1", "n1", attempt=2)
    last = await log.finish("retried", attempt=2)
    await log.accept("kept")
    history = await store.read(request_history("retried"))
    assert len(history) == 8
    db = tmp_path / "read.sqlite"
    now = log.at() + 8 * DAY
    async with running(Projector(store, db)) as projector:
        assert await projector.wait_for(last, 10)
        config = RetentionConfig(finished_requests=7 * DAY)
        done = await Retention(config, store, db, clock=lambda: now).run_once()
    assert (done.expired, done.purged_events) == (1, 8)
    assert await store.read(request_history("retried")) == []
    assert len(await store.read(request_history("kept"))) == 1
