"""Invariants of DESIGN.md §2 under faults, checked from the event log alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from gsch.audit import audit
from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.eventstore.subjects import request_events_of_type
from gsch.eventstore.watch import Follower
from gsch.model.events import PlacementCommitted
from gsch.runtime.embedded import EmbeddedNats
from tests.support.fleet import Fleet, assert_sound, wait_settled
from tests.support.pipeline import generated_levels, pod_request, publish_all, wait_inventory
from tests.support.waits import eventually

pytestmark = pytest.mark.slow


async def test_kill_9_one_of_three_workers_mid_run(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore
) -> None:
    total = 3000
    fleet = Fleet(tmp_path, nats_server.url)
    await fleet.start_binder("20x10")
    await fleet.start_housekeeper()  # snapshots and compaction throughout
    victims = [await fleet.start_worker() for _ in range(3)]
    await wait_inventory(store, 200)
    nc = await nats.connect(nats_server.url)
    try:
        bodies = [
            (f"k-{i:05d}", pod_request(f"k-{i:05d}", generated_levels(i))) for i in range(total)
        ]
        victim = victims[0]
        mark = f"-{victim.pid}"
        victim_commits = 0

        def count(stored: StoredEvent) -> None:
            nonlocal victim_commits
            event = stored.event
            if isinstance(event, PlacementCommitted) and event.worker.endswith(mark):
                victim_commits += 1

        watcher = Follower(store, request_events_of_type("PlacementCommitted"), count)
        await watcher.start(await store.last_seq())
        # Everything is queued first, so the victim certainly holds requests when it dies.
        await publish_all(nc, bodies)
        # Kill it without warning once it is busy placing.
        await eventually(lambda: victim_commits >= 20, 60, interval=0.01)
        victim.kill()
        await watcher.stop()
        report = await wait_settled(store, total, timeout=240)
        assert_sound(report, total, fleet)
        assert report.states["bound"] == total
        # The log was compacted while all this ran, and the audit started from a snapshot.
        assert report.snapshot_seq > 0, report.checked()
        assert any(names[-1].endswith(mark) for names in report.owners.values()), (
            "the victim placed nothing: the test proved nothing"
        )
        # What the victim held but had not committed came back to the others after its lease.
        # Deliveries beyond one per request are redeliveries after the victim's lease expired.
        intake = await store.js.consumer_info("GSCH_INTAKE", "gsch-intake")
        assert intake.delivered.consumer_seq > total
        assert intake.num_pending == 0
        assert intake.num_ack_pending == 0
    finally:
        await nc.close()
        await fleet.stop()


async def test_embedded_nats_restarted_twice_mid_run_loses_nothing(tmp_path: Path) -> None:
    """The embedded server (gsch's own EmbeddedNats, same data dir and port) goes down twice
    while requests flow; the workers and the binder reconnect, and every request settles."""
    total = 1500
    embedded = EmbeddedNats(tmp_path / "embedded")
    url = await embedded.start()
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await apply_declarations(nc, load_declarations(lease_seconds=3))
    store = EventStore(nc, request_timeout=2.0, give_up_after=60.0)
    fleet = Fleet(tmp_path, url)
    try:
        await fleet.start_binder("20x10")
        await fleet.start_housekeeper()
        for _ in range(2):
            await fleet.start_worker()
        await wait_inventory(store, 200)
        bodies = [
            (f"n-{i:05d}", pod_request(f"n-{i:05d}", generated_levels(i))) for i in range(total)
        ]
        await publish_all(nc, bodies[:500])
        for _round in range(2):
            await asyncio.sleep(1.0)
            await embedded.stop()
            await asyncio.sleep(1.5)
            assert await embedded.start() == url
        await asyncio.sleep(2.0)  # clients reconnect
        await publish_all(nc, bodies[500:])
        report = await wait_settled(store, total, timeout=240)
        assert_sound(report, total, fleet)
        not_bound = {r: s.reasons for r, s in report.requests.items() if s.state.value != "bound"}
        assert not_bound == {}
    finally:
        await nc.close()
        await fleet.stop()
        await embedded.stop()


async def test_binder_killed_and_restarted_binds_each_placement_once(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore
) -> None:
    """Re-delivered bindings are harmless: a binder killed with SIGKILL mid-run and started
    again leaves every request bound exactly once."""
    total = 1500
    fleet = Fleet(tmp_path, nats_server.url, {"GSCH_SIMULATOR__BIND_DELAY": "0.05"})
    first_binder = await fleet.start_binder("20x10")
    await fleet.start_housekeeper()
    for _ in range(2):
        await fleet.start_worker()
    await wait_inventory(store, 200)
    nc = await nats.connect(nats_server.url)
    try:
        bodies = [
            (f"b-{i:05d}", pod_request(f"b-{i:05d}", generated_levels(i))) for i in range(total)
        ]
        await publish_all(nc, bodies)
        for _ in range(100):  # kill it while it holds bindings in flight
            if (await audit(store)).states.get("bound", 0) >= 200:
                break
            await asyncio.sleep(0.1)
        first_binder.kill()
        await asyncio.sleep(1.0)
        await fleet.start_binder("20x10")
        report = await wait_settled(store, total, timeout=240)
        assert_sound(report, total, fleet)
        assert report.states["bound"] == total
        bound_events = await store.js.stream_info(
            "GSCH_EVENTS", subjects_filter="gsch.events.req.*.RequestBound"
        )
        per_subject = bound_events.state.subjects or {}
        assert len(per_subject) == total
        assert set(per_subject.values()) == {1}  # one RequestBound per request, never two
    finally:
        await nc.close()
        await fleet.stop()
