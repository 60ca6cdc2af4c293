"""Publish one cluster's inventory as coalesced events.

Every `window` seconds at most, and only for what changed since the last publication:
`ClusterDeclared` when readiness (or identity) changes, `NodeDeclared` per node whose
allocatable, foreign load, labels, taints, readiness or addresses changed, `PodsReported` per
node whose pod list changed. A burst of pod updates in one window costs one event per node, so
the node sequences that reservations are checked on move rarely.

The cluster is ready when its API server answered recently and the first node list is in; it
turns not ready only after `Reachability` says the outage lasted (no flapping on one failed
call). A vanished node is declared not ready (its reservations stay until released).

What was published is remembered from the log, not only from this process: before its first
word about the cluster or a node, the publisher reads what the log last says of it, so a
restarted binder or agent appends nothing when nothing changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gsch.aio import pause
from gsch.clusters.facts import declare
from gsch.eventstore.store import EventStore, StoreError, StoreUnavailableError
from gsch.eventstore.subjects import ClusterKey, NodeKey, PodsKey
from gsch.kube.informer import Reachability
from gsch.kube.inventory import ClusterInventory, NodeFacts
from gsch.model.events import ClusterDeclared, NodeDeclared, PodsReported
from gsch.model.resources import Resources

log = logging.getLogger(__name__)


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
        self._recalled: set[str] = set()  # nodes whose last declarations were read

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
        if ready is not None and self._ready is None:
            await self._recall_cluster()
        if ready is not None and ready != self._ready:
            await self._cluster(ready)
            appended += 1
        if not ready:
            return appended  # stale knowledge is not news
        facts = self.inventory.facts()
        pods = self.inventory.pods_by_node()
        await self._recall_nodes(facts.keys() | pods.keys())
        for name in self._nodes.keys() - facts.keys():
            gone = NodeFacts(Resources(), self._nodes[name].labels, (), False, ())
            facts[name] = gone
        for name, node in sorted(facts.items()):
            if self._nodes.get(name) != node:
                await self._node(name, node)
                appended += 1
        for name in self._pods.keys() - pods.keys():
            pods[name] = ()
        for name, listed in sorted(pods.items()):
            if self._pods.get(name) != listed:
                event = PodsReported(at=time.time(), cluster=self.identity.cluster, node=name,
                                     pods=listed)  # fmt: skip
                await declare(self.store, PodsKey(self.identity.cluster, name), event)
                self._pods[name] = listed
                appended += 1
        return appended

    async def _recall_cluster(self) -> None:
        """Take the log's readiness as published when it declares this same identity."""
        identity = self.identity
        last = await self.store.last(ClusterKey(identity.cluster).subject("ClusterDeclared"))
        event = last.event if last else None
        if isinstance(event, ClusterDeclared) and (event.tier, event.labels, event.endpoint) == (
            identity.tier, identity.labels, identity.endpoint,
        ):  # fmt: skip
            self._ready = event.ready

    async def _recall_nodes(self, names: set[str]) -> None:
        cluster = self.identity.cluster
        for name in sorted(names - self._recalled):
            node = await self.store.last(NodeKey(cluster, name).subject("NodeDeclared"))
            if node is not None and isinstance(node.event, NodeDeclared):
                declared = node.event
                self._nodes.setdefault(name, NodeFacts(
                    declared.allocatable, dict(declared.labels), declared.taints, declared.ready,
                    declared.addresses, declared.foreign,
                ))  # fmt: skip
            pods = await self.store.last(PodsKey(cluster, name).subject("PodsReported"))
            if pods is not None and isinstance(pods.event, PodsReported):
                self._pods.setdefault(name, pods.event.pods)
            self._recalled.add(name)

    async def _cluster(self, ready: bool) -> None:
        identity = self.identity
        event = ClusterDeclared(
            at=time.time(), cluster=identity.cluster, tier=identity.tier,
            labels=identity.labels, ready=ready, endpoint=identity.endpoint,
        )  # fmt: skip
        await declare(self.store, ClusterKey(identity.cluster), event)
        self._ready = ready

    async def _node(self, name: str, node: NodeFacts) -> None:
        event = NodeDeclared(
            at=time.time(), cluster=self.identity.cluster, node=name,
            allocatable=node.allocatable, labels=node.labels, taints=node.taints,
            ready=node.ready, foreign=node.foreign, addresses=node.addresses,
        )  # fmt: skip
        await declare(self.store, NodeKey(self.identity.cluster, name), event)
        self._nodes[name] = node

    async def run(self, window: float) -> None:
        """Publish every `window` seconds until cancelled."""
        while True:
            try:
                await self.publish()
            except (StoreError, StoreUnavailableError) as exc:
                # Nothing unpublished is marked published: the next window tries again.
                log.warning("inventory not published", extra={"cluster": self.identity.cluster,
                                                             "error": str(exc)})  # fmt: skip
            await pause(window)
