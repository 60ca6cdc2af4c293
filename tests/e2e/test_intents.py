"""Two competing worker processes racing for the same few nodes, with commit intents: every
request is placed once and no node is overcommitted (the audit of the log), and the workers
really told each other their batches; the same when every intent is lost (one worker takes no
part, so its batches are never announced and the other's are never heard)."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from gsch.eventstore.store import EventStore
from gsch.runtime.embedded import EmbeddedNats
from tests.support.fleet import Fleet, assert_sound, wait_settled
from tests.support.pipeline import pod_request, publish_all, wait_inventory

# Every request may go to either cluster of a "2x3" fleet, and the free-capacity policy sends
# them all to the same three large nodes: the workers race for those on every decision.
LEVELS = [["cloud-00000", "near-edge-00001"]]
TOTAL = 600


@pytest.mark.parametrize("lost", [False, True], ids=["intents", "intents-lost"])
async def test_two_competing_workers_place_each_request_once(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore, lost: bool
) -> None:
    fleet = Fleet(tmp_path, nats_server.url)
    nc = await nats.connect(nats_server.url)
    senders: set[str] = set()

    async def heard(msg: Msg) -> None:
        senders.add(msg.subject)

    try:
        await nc.subscribe("gsch.intents.*", cb=heard)
        # A little room per worker, so that neither can take the whole intake before the
        # other's first fetch: both must place, and race, for the test to say anything.
        fleet.env.update(
            GSCH_WORKER__MAX_IN_FLIGHT="8",
            GSCH_WORKER__MAX_QUEUED="8",
            GSCH_WORKER__FETCH_BATCH="4",
        )
        await fleet.start_binder("2x3")
        await fleet.start_worker()
        if lost:
            fleet.env["GSCH_WORKER__INTENTS"] = "false"
        await fleet.start_worker()
        await wait_inventory(store, 6)
        bodies = [(f"i-{i:04d}", pod_request(f"i-{i:04d}", LEVELS)) for i in range(TOTAL)]
        await publish_all(nc, bodies)
        report = await wait_settled(store, TOTAL, timeout=180)
        assert_sound(report, TOTAL, fleet)
        assert report.states["bound"] == TOTAL
        placed_by = {names[-1] for names in report.owners.values()}
        assert len(placed_by) == 2, "one worker placed everything: they did not compete"
        assert len(senders) == (1 if lost else 2), senders
    finally:
        await nc.close()
        await fleet.stop()
