"""Publish one cluster's inventory as coalesced events.

Every `window` seconds at most, and only for what changed since the last publication:
`ClusterDeclared` when readiness (or identity) changes, `NodeDeclared` per node whose
allocatable, foreign load, labels, taints, readiness or addresses changed, `PodsReported` per
node whose pod list changed. A burst of pod updates in one window costs one event per node, so
the node sequences that reservations are checked on move rarely.

The cluster is ready when its API server answered recently and the first node list is in; it
turns not ready only after `Reachability` says the outage lasted (no flapping on one failed
call). A vanished node is declared not ready (its reservations stay until released).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gsch.clusters.facts import declare
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import cluster_subject, node_subject, pods_subject
from gsch.kube.informer import Reachability
from gsch.kube.inventory import ClusterInventory, NodeFacts
from gsch.kube.pause import pause
from gsch.model.events import ClusterDeclared, NodeDeclared, PodsReported
from gsch.model.resources import Resources


@dataclass(frozen=True)
class Identity:
    cluster: str
    tier: str
    labels: dict[str, str] = field(default_factory=dict)
    endpoint: str = ""  # host:port of the API server, a latency probe target


class InventoryPublisher:
    def __init__(
        self,
        store: EventStore,
        identity: Identity,
        inventory: ClusterInventory,
        reachability: Reachability,
        synced: Callable[[], bool],
    ) -> None:
        self.store = store
        self.identity = identity
        self.inventory = inventory
        self.reachability = reachability
        self.synced = synced
        self._ready: bool | None = None
        self._nodes: dict[str, NodeFacts] = {}
        self._pods: dict[str, tuple[str, ...]] = {}

    @property
    def ready(self) -> bool | None:
        """What was last published (None: nothing yet)."""
        return self._ready

    def judgement(self) -> bool | None:
        """Whether the cluster is ready now (None: nothing to say yet)."""
        reachable = self.reachability.reachable
        synced = self.synced()
        # Before the first list completes there is nothing to say, unless the API server has
        # been failing long enough to call the cluster not ready.
        return reachable and synced if synced or not reachable else None

    async def publish(self) -> int:
        """Append what changed since the last call; return the number of events."""
        appended = 0
        ready = self.judgement()
        if ready is not None and ready != self._ready:
            await self._cluster(ready)
            appended += 1
        if not ready:
            return appended  # stale knowledge is not news
        facts = self.inventory.facts()
        for name in self._nodes.keys() - facts.keys():
            gone = NodeFacts(Resources(), self._nodes[name].labels, (), False, ())
            facts[name] = gone
        for name, node in sorted(facts.items()):
            if self._nodes.get(name) != node:
                await self._node(name, node)
                appended += 1
        pods = self.inventory.pods_by_node()
        for name in self._pods.keys() - pods.keys():
            pods[name] = ()
        for name, listed in sorted(pods.items()):
            if self._pods.get(name) != listed:
                event = PodsReported(at=time.time(), cluster=self.identity.cluster, node=name,
                                     pods=listed)  # fmt: skip
                subject = pods_subject(self.identity.cluster, name, "PodsReported")
                await declare(self.store, subject, event)
                self._pods[name] = listed
                appended += 1
        return appended

    async def _cluster(self, ready: bool) -> None:
        identity = self.identity
        event = ClusterDeclared(
            at=time.time(), cluster=identity.cluster, tier=identity.tier,
            labels=identity.labels, ready=ready, endpoint=identity.endpoint,
        )  # fmt: skip
        await declare(self.store, cluster_subject(identity.cluster, "ClusterDeclared"), event)
        self._ready = ready

    async def _node(self, name: str, node: NodeFacts) -> None:
        event = NodeDeclared(
            at=time.time(), cluster=self.identity.cluster, node=name,
            allocatable=node.allocatable, labels=node.labels, taints=node.taints,
            ready=node.ready, foreign=node.foreign, addresses=node.addresses,
        )  # fmt: skip
        await declare(self.store, node_subject(self.identity.cluster, name, "NodeDeclared"), event)
        self._nodes[name] = node

    async def run(self, window: float) -> None:
        """Publish every `window` seconds until cancelled."""
        while True:
            await self.publish()
            await pause(window)
