"""Place an instance's requests one at a time, in arrival order, through the planner, as a
worker does: plan on the cluster snapshot, then fold the reservation into it before the
next request (a worker commits it and folds it back from the log; the result is the same)."""

from __future__ import annotations

from dataclasses import dataclass

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import CapacityReserved
from gsch.model.request import Policy, Request, Source
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.tools.quality.instances import Instance


@dataclass(frozen=True)
class Placed:
    """Where each request went: (cluster, node), or None when nothing could take it."""

    where: tuple[tuple[str, str] | None, ...]

    @property
    def count(self) -> int:
        return sum(1 for w in self.where if w is not None)

    @property
    def nodes_used(self) -> int:
        return len({w for w in self.where if w is not None})


def snapshot_of(instance: Instance) -> ClusterSnapshot:
    snapshot = ClusterSnapshot()
    for seq, event in enumerate(instance.topology.inventory(), start=1):
        snapshot.apply(event, seq)
    return snapshot


def place_in_order(instance: Instance, policy: Policy, mode: str = "default") -> Placed:
    """Every request names every cluster of the fleet in one competing level."""
    snapshot = snapshot_of(instance)
    level = (instance.cluster_names,)
    profile = PROFILES[policy]
    where: list[tuple[str, str] | None] = []
    for demand in instance.demands:
        source = Source(*demand.source) if demand.source is not None else None
        request = Request(
            request_id=demand.request_id,
            policy=policy,
            mode=mode,
            levels=level,
            source=source,
            demand=demand.amount,
        )
        decision = plan(profile, request, snapshot)
        if not decision.placed:
            where.append(None)
            continue
        (placement,) = decision.placements
        reserved = CapacityReserved(
            at=0,
            cluster=placement.cluster,
            node=placement.node,
            request_id=demand.request_id,
            attempt=1,
            amount=placement.amount,
        )
        snapshot.apply(reserved, snapshot.last_seq + 1)
        where.append((placement.cluster, placement.node))
    return Placed(tuple(where))


def total_rtt(instance: Instance, placed: Placed) -> float:
    """Round trips (ms) from each placed request's source to its node, summed."""
    total = 0.0
    for demand, where in zip(instance.demands, placed.where, strict=True):
        if where is None or demand.source is None:
            continue
        rtt = instance.topology.rtt(demand.source, *where)
        if rtt is None:
            raise ValueError(f"no round trip known from {demand.source} to {where}")
        total += rtt
    return total
