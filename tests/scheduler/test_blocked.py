"""Blocked requests: which parked requests a capacity change wakes, and which it does not
even re-plan."""

from __future__ import annotations

import asyncio

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import (
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    NodeDeclared,
    Placement,
)
from gsch.model.request import Policy, QueueLevel, Request
from gsch.model.resources import Resources
from gsch.scheduler.blocked import BlockedRequests, Parked, usable_clusters
from tests.support.waits import eventually


class _Item:
    """Stands in for a held JetStream message: parking reads its sequence; stopping naks it."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.naked = False

    async def nak(self) -> None:
        self.naked = True


def fleet() -> ClusterSnapshot:
    snapshot = ClusterSnapshot()
    seq = 0
    for cluster, cpu in (("small", 2000), ("big", 8000)):
        seq += 1
        snapshot.apply(ClusterDeclared(at=0, cluster=cluster, tier="edge"), seq)
        seq += 1
        node = NodeDeclared(at=0, cluster=cluster, node=f"{cluster}-n",
                            allocatable=Resources(cpu, 2**34, 0, 110))  # fmt: skip
        snapshot.apply(node, seq)
        seq += 1  # fill it up
        full = CapacityReserved(at=0, cluster=cluster, node=f"{cluster}-n",
                                request_id=f"hog-{cluster}", attempt=1,
                                amount=Resources(cpu, 0, 0, 1))  # fmt: skip
        snapshot.apply(full, seq)
    return snapshot


def request(request_id: str, cpu: int, levels: tuple[tuple[str, ...], ...]) -> Request:
    return Request(request_id=request_id, policy=Policy("GMostRequestedPriority"),
                   mode="default", levels=levels, demand=Resources(cpu, 0, 0, 1))  # fmt: skip


async def test_a_release_re_plans_only_requests_that_could_fit_what_was_freed() -> None:
    snapshot = fleet()
    planned: list[str] = []
    woken: list[str] = []

    def dry_plan(req: Request) -> tuple[Placement, ...]:
        planned.append(req.request_id)
        cluster = req.levels[0][0]
        node = snapshot.clusters[cluster].nodes[f"{cluster}-n"]
        fits = req.demand.fits_in(node.free)
        return (Placement(cluster, node.name, req.demand),) if fits else ()

    blocked = BlockedRequests(snapshot, dry_plan, lambda p: woken.append(p.request.request_id), 60)
    for seq, (request_id, cpu, levels) in enumerate(
        [
            ("wide", 4000, (("small", "big"),)),  # more than "small" can ever hold
            ("fits", 500, (("small",),)),
            ("also", 500, (("small",),)),  # the release makes room for one of the two only
            ("elsewhere", 500, (("big",),)),  # "big" did not change
        ],
        start=1,
    ):
        parked = Parked(_Item(seq), request(request_id, cpu, levels), QueueLevel.BASE)  # type: ignore[arg-type]
        blocked.park(parked)
    released = CapacityReleased(at=0, cluster="small", node="small-n", request_id="hog-small",
                                attempt=1, reason="finished")  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(blocked.run(stop))
    # 2000m freed on "small", 1200m of it taken again at once: 800m, room for one 500m.
    snapshot.apply(released, 100)
    snapshot.apply(CapacityReserved(at=0, cluster="small", node="small-n", request_id="other",
                                    attempt=1, amount=Resources(1200, 0, 0, 1)), 101)  # fmt: skip
    await eventually(lambda: bool(woken), 5, interval=0.01)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert "wide" not in planned  # 4000m cannot fit in what "small" has: not even re-planned
    assert "elsewhere" not in planned  # nothing changed on "big"
    assert woken == ["fits"]  # oldest first; "also" would need the same 500m
    assert "also" in planned
    assert len(blocked) == 0  # stopping handed every parked message back


def test_requests_naming_selectors_could_use_any_cluster() -> None:
    assert usable_clusters(request("r", 1, (("a", "b"), ("c",)))) == frozenset({"a", "b", "c"})
    assert usable_clusters(request("r", 1, (("a",), ("tier=edge",)))) is None
    assert usable_clusters(request("r", 1, ())) is None
