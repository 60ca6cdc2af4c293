"""Simulated topologies: clusters with tier and labels, nodes with capacity, and latencies.

File format (TOML; see README "Topology files"):

    intra_cluster_ms = 0.5            # node-to-node RTT inside a cluster (default 0.5)

    [[clusters]]
    name = "edge-1"
    tier = "edge"                     # cloud | edge | near-edge
    labels = { region = "kr" }
    ready = true                      # default true

      [[clusters.nodes]]
      name = "edge-1-w"               # with count = N: edge-1-w1 .. edge-1-wN
      count = 3                       # default 1 (then the name is used as is)
      cpu = "16"                      # Kubernetes quantities
      memory = "64Gi"
      gpu = 1                         # nvidia.com/gpu, default 0
      pods = 110                      # default 110
      labels = { "gpu-model" = "rtx6000" }
      taints = [{ key = "dedicated", value = "ml", effect = "NoSchedule" }]
      ready = true
      running_pods = ["video/camera-1"] # pods already on the node ("namespace/name", or a
                                        # bare name in "default"), for frompod sources;
                                        # only on a node with count = 1

    [[latency]]                        # round-trip time between clusters, both directions
    between = ["edge-1", "cloud-1"]
    ms = 12.0

    [workloads]                        # optional: how long bound workloads run (durations.py)
    source = "edge-1/edge-1-w1"        # where their data comes from, unless a request says
    base_seconds = 60.0                # runtime = base + per_ms x RTT(source, chosen node)
    per_ms_seconds = 4.0
    shared = [{ name = "gpu", seconds = 30.0 }]  # then a first-come turn on each, in order
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from gsch.clusters.durations import DurationError, DurationModel, WorkloadsSpec
from gsch.model.events import ClusterDeclared, LatencyReported, NodeDeclared, Taint
from gsch.model.resources import QuantityError, Resources, cpu_millis, whole_units

TIERS = ("cloud", "edge", "near-edge")


class TopologyError(Exception):
    """The topology file is invalid; the message names the place."""


class NodeSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    cpu: str | int | float
    memory: str | int
    count: int = 1
    gpu: int = 0
    pods: int = 110
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: list[Taint] = msgspec.field(default_factory=list)
    ready: bool = True
    running_pods: list[str] = msgspec.field(default_factory=list)


class ClusterSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    tier: str
    nodes: list[NodeSpec]
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    ready: bool = True
    bind_failure_rate: float | None = None
    unreachable_after: float | None = None


class LatencySpec(msgspec.Struct, forbid_unknown_fields=True):
    between: tuple[str, str]
    ms: float


class TopologyFile(msgspec.Struct, forbid_unknown_fields=True):
    clusters: list[ClusterSpec]
    latency: list[LatencySpec] = msgspec.field(default_factory=list)
    intra_cluster_ms: float = 0.5
    workloads: WorkloadsSpec | None = None


class SimNode(msgspec.Struct, frozen=True):
    name: str
    allocatable: Resources
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    pods: tuple[str, ...] = ()  # "namespace/name" of the pods running on it


class SimCluster(msgspec.Struct, frozen=True):
    name: str
    tier: str
    labels: dict[str, str]
    ready: bool
    nodes: tuple[SimNode, ...]
    bind_failure_rate: float | None = None
    unreachable_after: float | None = None


class Topology(msgspec.Struct, frozen=True):
    clusters: tuple[SimCluster, ...]
    cluster_latency: dict[str, dict[str, float]]
    intra_cluster_ms: float
    workloads: DurationModel | None = None  # None: workloads run `workload_lifetime`

    def cluster_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.clusters)

    def latencies_from(self, cluster: str) -> dict[str, float]:
        found = dict(self.cluster_latency.get(cluster, {}))
        found[cluster] = self.intra_cluster_ms
        return found

    def node_latencies_from(self, cluster: SimCluster, node: SimNode) -> dict[str, float]:
        """Round trips from a node to the nodes of its own cluster (0 ms to itself: a
        workload next to its source lands on it)."""
        return {
            n.name: 0.0 if n.name == node.name else self.intra_cluster_ms for n in cluster.nodes
        }

    def rtt(self, source: tuple[str, str], cluster: str, node: str) -> float | None:
        """Round trip (ms) from a source node (cluster, node) to a node, as the simulator
        reports latencies: 0 to itself, `intra_cluster_ms` within its cluster, else the two
        clusters' latency; None when the topology gives none."""
        source_cluster, source_node = source
        if cluster == source_cluster:
            return 0.0 if node == source_node else self.intra_cluster_ms
        return self.cluster_latency.get(source_cluster, {}).get(cluster)

    def pod_node(self, cluster: str, pod: str) -> str | None:
        """The node of `cluster` that runs `pod` ("namespace/name"), per `running_pods`."""
        for spec in self.clusters:
            if spec.name == cluster:
                return next((n.name for n in spec.nodes if pod in n.pods), None)
        return None

    # --- the inventory as events (the simulator appends them; tools fold them) ----------

    @staticmethod
    def cluster_event(cluster: SimCluster, at: float) -> ClusterDeclared:
        return ClusterDeclared(
            at=at, cluster=cluster.name, tier=cluster.tier, labels=cluster.labels,
            ready=cluster.ready,
        )  # fmt: skip

    @staticmethod
    def node_event(cluster: SimCluster, node: SimNode, at: float) -> NodeDeclared:
        return NodeDeclared(
            at=at, cluster=cluster.name, node=node.name, allocatable=node.allocatable,
            labels=node.labels, taints=node.taints, ready=node.ready,
        )  # fmt: skip

    def latency_event(self, cluster: SimCluster, node: SimNode, at: float) -> LatencyReported:
        return LatencyReported(
            at=at, cluster=cluster.name, node=node.name,
            to_clusters=self.latencies_from(cluster.name),
            to_nodes=self.node_latencies_from(cluster, node),
        )  # fmt: skip

    def inventory(
        self, at: float = 0.0
    ) -> Iterator[ClusterDeclared | NodeDeclared | LatencyReported]:
        """Every cluster, node and latency report of the topology, as the simulator declares
        them."""
        for cluster in self.clusters:
            yield self.cluster_event(cluster, at)
            for node in cluster.nodes:
                yield self.node_event(cluster, node, at)
                yield self.latency_event(cluster, node, at)


def _nodes(cluster: ClusterSpec) -> tuple[SimNode, ...]:
    nodes = []
    for spec in cluster.nodes:
        where = f"cluster {cluster.name} node {spec.name}"
        try:
            allocatable = Resources(
                cpu_m=cpu_millis(spec.cpu),
                memory=whole_units(spec.memory),
                gpu=spec.gpu,
                pods=spec.pods,
            )
        except QuantityError as exc:
            raise TopologyError(f"{where}: {exc}") from exc
        names = (
            [spec.name]
            if spec.count == 1
            else [f"{spec.name}{i}" for i in range(1, spec.count + 1)]
        )
        if spec.running_pods and spec.count != 1:
            raise TopologyError(f"{where}: running_pods needs count = 1 (a pod runs on one node)")
        pods = tuple(pod if "/" in pod else f"default/{pod}" for pod in spec.running_pods)
        for name in names:
            labels = {"kubernetes.io/hostname": name, **spec.labels}
            nodes.append(SimNode(name, allocatable, labels, tuple(spec.taints), spec.ready, pods))
    return tuple(nodes)


def build_topology(parsed: TopologyFile) -> Topology:
    clusters = []
    seen: set[str] = set()
    for spec in parsed.clusters:
        if spec.tier not in TIERS:
            raise TopologyError(f"cluster {spec.name}: tier must be one of {', '.join(TIERS)}")
        if spec.name in seen:
            raise TopologyError(f"cluster {spec.name} is declared twice")
        seen.add(spec.name)
        labels = {"tier": spec.tier, **spec.labels}
        clusters.append(
            SimCluster(
                spec.name, spec.tier, labels, spec.ready, _nodes(spec),
                spec.bind_failure_rate, spec.unreachable_after,
            )
        )  # fmt: skip
    latency: dict[str, dict[str, float]] = {}
    for entry in parsed.latency:
        a, b = entry.between
        for name in (a, b):
            if name not in seen:
                raise TopologyError(f"latency names unknown cluster {name}")
        latency.setdefault(a, {})[b] = entry.ms
        latency.setdefault(b, {})[a] = entry.ms
    topology = Topology(tuple(clusters), latency, parsed.intra_cluster_ms)
    if parsed.workloads is None:
        return topology
    try:
        model = DurationModel.from_spec(parsed.workloads)
    except DurationError as exc:
        raise TopologyError(str(exc)) from exc
    if model.source is not None:
        cluster, node = model.source
        if not any(c.name == cluster and any(n.name == node for n in c.nodes) for c in clusters):
            raise TopologyError(f"workloads.source: no node {node} in cluster {cluster}")
    return msgspec.structs.replace(topology, workloads=model)


def load_topology(path: str | Path) -> Topology:
    try:
        raw = tomllib.loads(Path(path).read_text())
        parsed = msgspec.convert(raw, TopologyFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise TopologyError(f"topology {path}: {exc}") from exc
    return build_topology(parsed)


def generated_topology(clusters: int, nodes_per_cluster: int) -> Topology:
    """A synthetic three-tier fleet for benchmarks: 10% cloud, 30% edge, 60% near edge."""
    specs = []
    for index in range(clusters):
        share = index / max(1, clusters)
        tier = "cloud" if share < 0.1 else "edge" if share < 0.4 else "near-edge"
        size = {"cloud": ("64", "256Gi"), "edge": ("32", "128Gi"), "near-edge": ("16", "64Gi")}
        cpu, memory = size[tier]
        name = f"{tier}-{index:05d}"
        specs.append(
            ClusterSpec(
                name=name,
                tier=tier,
                nodes=[NodeSpec(name=f"{name}-n", cpu=cpu, memory=memory, count=nodes_per_cluster)],
            )
        )
    return build_topology(TopologyFile(clusters=specs))
