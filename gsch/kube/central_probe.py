"""The latency probe run by the binder for central clusters (`[kube.probe] central = true`, or
`probe = true` on a member), measuring from gsch's own host.

Source identity: the report is "from" `central_cluster`/`central_node` (`[kube.probe]`), the
place gsch runs, e.g. the cloud cluster hosting it; a request whose data source is there
(`fromnode` that node) ranks clusters by these numbers. Each probed member's API endpoint is a
`to_clusters` entry, what GLowLatencyPriority ranks clusters on. Node addresses are
`to_nodes` entries: by plain name for the source cluster's own nodes (when it is itself a
member, the policy uses them to pick the nearest node), as `<cluster>/<node>` for the other
members' nodes (informational: Kubernetes node names have no `/`, so they never match a node
the policy looks up). Runs in the background, like the agent's probe: no request waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gsch.eventstore.store import EventStore
from gsch.kube.member import MemberCluster
from gsch.kube.probe import Address, LatencyProbe, Targets
from gsch.runtime.config import Config


def probed(config: Config, members: dict[str, MemberCluster]) -> dict[str, MemberCluster]:
    """The members the binder probes: per member `probe`, else `[kube.probe] central`."""
    default = config.kube.probe.central
    settings = config.kube.clusters
    return {
        name: member
        for name, member in members.items()
        if (default if settings[name].probe is None else settings[name].probe)
    }


def central_targets(members: dict[str, MemberCluster], source: str, node_port: int) -> Targets:
    nodes: dict[str, Address] = {}
    for name, member in members.items():
        for node, address in member.node_addresses(node_port).items():
            nodes[node if name == source else f"{name}/{node}"] = address
    clusters = {name: member.client.endpoint for name, member in members.items()}
    return Targets(clusters=clusters, nodes=nodes)


@contextlib.asynccontextmanager
async def central_probe(
    config: Config, store: EventStore, members: dict[str, MemberCluster]
) -> AsyncIterator[LatencyProbe | None]:
    """Probe the members that want it until the block ends (None: none do)."""
    settings = config.kube.probe
    targets = probed(config, members)
    if not (settings.enabled and targets):
        yield None
        return
    probe = LatencyProbe(
        store, settings.central_cluster, settings.central_node, settings,
        lambda: central_targets(targets, settings.central_cluster, settings.node_port),
    )  # fmt: skip
    task = asyncio.create_task(probe.run())
    try:
        yield probe
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
