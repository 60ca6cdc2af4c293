"""Selector levels over large fleets walk the snapshot's standing cluster rankings (kept
current from events) instead of scanning every cluster: the choice must be the full scan's,
whatever order capacity events came in, and however the selectors of a level overlap."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    NodeDeclared,
)
from gsch.model.request import Policy
from gsch.model.resources import Resources
from gsch.policies.allocation import LEAST_ALLOCATED
from gsch.policies.framework import Decision, Profile, plan
from gsch.policies.most_requested import FREE_CAPACITY
from gsch.policies.registry import PROFILES
from tests.support.planning import GI, node, request, searching_from, snapshot_of

# Two plugins with bounds, weighed: the profile's bound is the weighted sum of their
# normalised bounds, which must still never cut off the cluster a full scan would choose.
WEIGHED = dataclasses.replace(
    PROFILES[Policy.MOST_REQUESTED],
    name="free capacity + least allocated x2",
    scorers=(FREE_CAPACITY, dataclasses.replace(LEAST_ALLOCATED, weight=2.0)),
)
# The profiles that search large levels best bound first.
SEARCHING = [PROFILES[Policy.MOST_REQUESTED], PROFILES[Policy.LEAST_REQUESTED], WEIGHED]
TIERS = ["near-edge", "edge", "cloud"]
REGIONS = ["kr", "us"]


@st.composite
def fleets(draw: st.DrawFn) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for index in range(draw(st.integers(1, 12))):
        name = f"c{index:02d}"
        labels = {"tier": draw(st.sampled_from(TIERS)), "region": draw(st.sampled_from(REGIONS))}
        ready = draw(st.sampled_from([True, True, True, False]))
        events.append(
            ClusterDeclared(at=0, cluster=name, tier=labels["tier"], labels=labels, ready=ready)
        )
        for n in range(draw(st.integers(0, 4))):
            events.append(
                node(
                    name,
                    f"{name}-n{n}",
                    cpu=draw(st.sampled_from([1, 2, 4, 8])),
                    memory_gi=draw(st.sampled_from([2, 4, 8])),
                    gpu=draw(st.sampled_from([0, 0, 1, 2])),
                    used_cpu=draw(st.sampled_from([0, 0.5, 1])),
                    # Memory used apart from cpu: a cluster's bound (best cpu share plus best
                    # memory share, maybe of different nodes) is then often above its score.
                    used_memory_gi=draw(st.sampled_from([0, 1, 1.5])),
                    ready=draw(st.sampled_from([True, True, True, False])),
                )
            )
    return events


@st.composite
def capacity_changes(draw: st.DrawFn, events: list[AnyEvent]) -> list[AnyEvent]:
    """Reservations and releases on the fleet's nodes, as workers and binders append them."""
    nodes = [(e.cluster, e.node) for e in events if isinstance(e, NodeDeclared)]
    changes: list[AnyEvent] = []
    if not nodes:
        return changes
    for i in range(draw(st.integers(0, 10))):
        cluster, name = draw(st.sampled_from(nodes))
        reserved = [c for c in changes if isinstance(c, CapacityReserved)]
        if len(reserved) > 0 and draw(st.booleans()):
            held = draw(st.sampled_from(reserved))
            changes.append(
                CapacityReleased(
                    at=1, cluster=held.cluster, node=held.node, request_id=held.request_id,
                    attempt=1, reason="finished",
                )
            )  # fmt: skip
        else:
            amount = Resources(draw(st.sampled_from([250, 1000, 3000])), GI // 2, 0, 1)
            changes.append(
                CapacityReserved(
                    at=1, cluster=cluster, node=name, request_id=f"r{i}", attempt=1, amount=amount
                )
            )
    return changes


LEVELS = st.lists(
    st.lists(
        st.sampled_from(["tier=near-edge", "tier=edge", "tier=cloud", "region=kr",
                         "tier=edge&region=us", "c03", "c99"]),
        min_size=1, max_size=3, unique=True,
    ).map(tuple),
    min_size=1, max_size=3,
).map(tuple)  # fmt: skip


def planned_with(
    profile: Profile,
    bound_from: int,
    levels: tuple[tuple[str, ...], ...],
    snapshot: ClusterSnapshot,
    cpu: float,
    gpu: int,
) -> Decision:
    """Plan with levels searched by bound from `bound_from` clusters on (0: every selector
    level walks the rankings; huge: every level is scanned whole)."""
    return plan(searching_from(profile, bound_from), request(levels, cpu=cpu, gpu=gpu), snapshot)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_walking_the_rankings_chooses_what_the_full_scan_chooses(data: st.DataObject) -> None:
    profile = data.draw(st.sampled_from(SEARCHING))
    events = data.draw(fleets())
    changes = data.draw(capacity_changes(events))
    levels = data.draw(LEVELS)
    cpu = data.draw(st.sampled_from([0.25, 1, 3]))
    gpu = data.draw(st.sampled_from([0, 0, 1]))
    # Rankings built before the capacity events, then kept current by them...
    kept = snapshot_of(events)
    planned_with(profile, 0, levels, kept, cpu, gpu)
    for seq, change in enumerate(changes, start=len(events) + 1):
        kept.apply(change, seq)
    # ... must order clusters as rankings built from scratch, and choose as the full scan.
    fresh = snapshot_of(events + changes)
    expected = planned_with(profile, 10**9, levels, fresh, cpu, gpu)
    for snapshot in (kept, fresh):
        decision = planned_with(profile, 0, levels, snapshot, cpu, gpu)
        assert decision.placements == expected.placements
        assert decision.level_index == expected.level_index
    for rankings in kept._ranked.values():
        rebuilt = sorted((-rankings.bound(fresh.clusters[n]), n) for n in rankings.bounds)
        assert rankings.order == rebuilt
