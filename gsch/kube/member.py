"""One Kubernetes member cluster as gsch runs it: a client, the informers on its Nodes and
Pods, the inventory they fold, the publisher of coalesced inventory events, and the applier
for bindings. The central binder runs one per `mode = "central"` cluster; an agent runs one for
its own cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gsch.eventstore.store import EventStore
from gsch.kube.applier import ApplyError, NamespacePlan, apply_all, remove_all
from gsch.kube.client import KubeClient
from gsch.kube.informer import Informer, Reachability
from gsch.kube.inventory import ClusterInventory
from gsch.kube.manifest import owned_by, prepare, target_namespace
from gsch.kube.publisher import Identity, InventoryPublisher
from gsch.model.admission.admit import Scope, summary, violations
from gsch.model.admission.secrets import SealError, open_secrets
from gsch.model.request import Request
from gsch.model.workload import CLUSTER_SCOPED_KINDS
from gsch.runtime.admission import admission_rules
from gsch.runtime.config import Config, MemberConfig

log = logging.getLogger(__name__)


class _NodeSink:
    def __init__(self, inventory: ClusterInventory) -> None:
        self.reset = inventory.reset_nodes
        self.event = inventory.node_event


class _PodSink:
    def __init__(self, inventory: ClusterInventory) -> None:
        self.reset = inventory.reset_pods
        self.event = inventory.pod_event


class MemberCluster:
    def __init__(
        self, name: str, settings: MemberConfig, config: Config, store: EventStore,
        client: KubeClient,
    ) -> None:  # fmt: skip
        kube = config.kube
        self.name = name
        self.client = client
        self.manager = kube.field_manager
        self.allowed_kinds = frozenset(settings.allowed_kinds or config.intake.allowed_kinds)
        self.admission = admission_rules(config)
        self.service_account = (config.admission.gsch_namespace, kube.service_account)
        self.inventory = ClusterInventory()
        self.reachability = Reachability(kube.unreachable_after)
        options: dict[str, Any] = {"page_size": kube.page_size, "watch_seconds": kube.watch_seconds}
        self.informers = [
            Informer(client, "/api/v1/nodes", _NodeSink(self.inventory), self.reachability,
                     **options),
            Informer(client, "/api/v1/pods", _PodSink(self.inventory), self.reachability,
                     **options),
        ]  # fmt: skip
        host, port = client.endpoint
        identity = Identity(name, settings.tier, dict(settings.labels), f"{host}:{port}")
        self.publisher = InventoryPublisher(
            store, identity, self.inventory, self.reachability, self._synced
        )
        self.window = kube.coalesce_seconds
        self._tasks: list[asyncio.Task[None]] = []

    def _synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(i.run()) for i in self.informers]
        self._tasks.append(asyncio.create_task(self.publisher.run(self.window)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def node_addresses(self, port: int) -> dict[str, tuple[str, int]]:
        """Each node's first address (internal first) at `port`: latency probe targets."""
        return {
            name: (facts.addresses[0], port)
            for name, facts in self.inventory.nodes.items()
            if facts.addresses
        }

    def _documents(self, request_id: str, request: Request, node: str) -> list[dict[str, Any]]:
        kinds = {str(d.get("kind")) for d in request.workload}
        # Cluster-scoped kinds never, whatever a config allows: gsch places namespaced work.
        refused = sorted(kinds - self.allowed_kinds | kinds & CLUSTER_SCOPED_KINDS)
        if refused:
            raise ApplyError(f"{self.name} does not accept kind {', '.join(refused)}")
        namespace = target_namespace(request)
        try:
            workload = tuple(open_secrets(request.workload, namespace, self.admission.secret_key))
        except SealError as exc:
            raise ApplyError(f"{self.name}: {exc}") from exc
        # Admission again, under this cluster's own configuration: whoever wrote the event
        # this binding comes from, nothing the intake would refuse reaches the cluster.
        scope = Scope.of(
            request.project_name, request.workspace_name, request.workspace_uid,
            request.namespace, self.admission,
        )  # fmt: skip
        found = violations(workload, scope, self.admission)
        if found:
            first = summary(found)
            raise ApplyError(f"{self.name} refuses the workload: {first.field}: {first.problem}")
        opened = msgspec.structs.replace(request, workload=workload)
        return prepare(request_id, opened, self.inventory.hostname(node), node)

    def _namespace_plan(self, request: Request) -> NamespacePlan:
        level = self.admission.project(request.project_name).pod_security
        return NamespacePlan(pod_security=level.value, service_account=self.service_account)

    async def apply(self, request_id: str, request: Request, node: str) -> None:
        documents = self._documents(request_id, request, node)
        await apply_all(
            self.client, documents, request_id, self.manager,
            lambda obj: owned_by(obj, request_id), self._namespace_plan(request),
        )  # fmt: skip

    async def remove(self, request_id: str, request: Request) -> None:
        # The node does not matter for deletion; names and the namespace do.
        documents = prepare(request_id, request, "", "")
        await remove_all(self.client, documents, lambda obj: owned_by(obj, request_id))


@contextlib.asynccontextmanager
async def running_member(
    name: str, settings: MemberConfig, config: Config, store: EventStore
) -> AsyncIterator[MemberCluster]:
    """Connect to the cluster (kubeconfig, or in-cluster when none is set) and run its
    inventory until the block ends."""
    client = await KubeClient.connect(
        settings.kubeconfig, settings.context, config.kube.request_timeout
    )
    member = MemberCluster(name, settings, config, store, client)
    member.start()
    try:
        yield member
    finally:
        await member.stop()
        await client.close()
