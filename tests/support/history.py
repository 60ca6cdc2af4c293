"""Random cluster histories written to a real log, and the state a snapshot holds, in a form
two snapshots can be compared by (for the compaction and snapshot tests)."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import nats.js.errors
from nats.aio.client import Client

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.store import EventStore, Write
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.eventstore.subjects import ClusterKey, LatencyKey, NodeKey, PodsKey
from gsch.model.events import (
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    Event,
    LatencyReported,
    NodeDeclared,
    PodsReported,
    Taint,
)
from gsch.model.resources import Resources

GI = 2**30


async def fresh_streams(nc: Client) -> None:
    """An empty log, telemetry stream and snapshot store for the next history."""
    js = nc.jetstream()
    for stream in ("GSCH_EVENTS", "GSCH_TELEMETRY", "OBJ_GSCH_SNAPSHOTS"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    await apply_declarations(nc, load_declarations())


def state_of(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """Everything a plan or a conditional append depends on, comparably."""
    clusters, nodes = {}, {}
    for cluster in snapshot.clusters.values():
        if cluster.declared:
            clusters[cluster.name] = (cluster.tier, cluster.labels, cluster.ready)
        for node in cluster.nodes.values():
            if not (node.declared or node.reservations or node.last_seq):
                continue
            nodes[(cluster.name, node.name)] = (
                node.declared, node.ready, node.allocatable, node.foreign, node.labels,
                node.taints, dict(node.reservations), node.reserved, node.last_seq,
            )  # fmt: skip
        aggregates = cluster.aggregates  # computed from the nodes when read
        if cluster.declared or cluster.nodes:
            clusters[f"{cluster.name} aggregates"] = aggregates
    pods = {
        (c, pod): snapshot.pod_node(c, pod)
        for c, _, listed, _ in snapshot.pod_reports()
        for pod in listed
    }
    return {
        "clusters": clusters,
        "nodes": nodes,
        "latency": dict(snapshot.latency),
        "pod_reports": snapshot.pod_reports(),
        "pods": pods,
        "clock": snapshot.clock,
    }


@dataclass
class RandomHistory:
    """Appends cluster events as gsch's writers do (reservations conditional on the node's
    history as the writer last saw it) and folds each into `truth`, the full replay."""

    store: EventStore
    rng: random.Random
    truth: ClusterSnapshot = field(default_factory=ClusterSnapshot)
    clock: float = 1_700_000_000.0
    requests: int = 0
    appended: int = 0

    async def _append(self, write: Write) -> int:
        (seq,) = await self.store.append(write)
        event = write.events[0]
        if isinstance(event, LatencyReported | PodsReported):
            self.truth.apply_telemetry(event, seq)  # a sequence of the telemetry stream
        else:
            self.truth.apply(event, seq)  # type: ignore[arg-type]  # a cluster event
        self.appended += 1
        return seq

    def _at(self) -> float:
        self.clock += self.rng.random()
        return self.clock

    async def step(self) -> None:
        rng = self.rng
        cluster = f"c{rng.randrange(3)}"
        node = f"{cluster}-n{rng.randrange(3)}"
        view = self.truth.clusters.get(cluster)
        declared = view.nodes.get(node) if view else None
        roll = rng.random()
        event: Event
        if view is None or not view.declared or roll < 0.05:
            event = ClusterDeclared(
                at=self._at(),
                cluster=cluster,
                tier=rng.choice(["cloud", "edge"]),
                labels={"zone": rng.choice("ab")},
                ready=rng.random() < 0.9,
            )
            await self._append(Write(ClusterKey(cluster), (event,)))
        elif declared is None or not declared.declared or roll < 0.15:
            taints = (Taint("gpu", "NoSchedule"),) if rng.random() < 0.2 else ()
            event = NodeDeclared(
                at=self._at(), cluster=cluster, node=node,
                allocatable=Resources(rng.choice([4000, 8000]), 16 * GI, rng.randrange(2), 110),
                labels={"disk": rng.choice(["ssd", "hdd"])}, taints=taints,
                ready=rng.random() < 0.9,
            )  # fmt: skip
            await self._append(Write(NodeKey(cluster, node), (event,)))
        elif roll < 0.55 or not declared.reservations:
            self.requests += 1
            event = CapacityReserved(
                at=self._at(), cluster=cluster, node=node, request_id=f"r{self.requests}",
                attempt=1, amount=Resources(rng.choice([100, 250, 500]), GI, 0, 1),
            )  # fmt: skip
            # Conditional on what the full replay says: it must hold after any compaction.
            await self._append(Write(NodeKey(cluster, node), (event,), expect=declared.last_seq))
        elif roll < 0.8:
            request_id = rng.choice(sorted(declared.reservations))
            event = CapacityReleased(
                at=self._at(), cluster=cluster, node=node, request_id=request_id, attempt=1,
                reason="finished",
            )  # fmt: skip
            await self._append(Write(NodeKey(cluster, node), (event,)))
        elif roll < 0.9:
            event = LatencyReported(
                at=self._at(), cluster=cluster, node=node,
                to_clusters={f"c{i}": round(rng.random() * 50, 3) for i in range(3)},
            )  # fmt: skip
            await self._append(Write(LatencyKey(cluster, node), (event,)))
        else:
            pods = tuple(sorted(rng.sample(["ns/a", "ns/b", "ns/c", "ns/d"], rng.randrange(3))))
            event = PodsReported(at=self._at(), cluster=cluster, node=node, pods=pods)
            await self._append(Write(PodsKey(cluster, node), (event,)))
