"""The scenario file: the test bed, the workload, the policies compared, the arrival patterns,
the sweep; and what follows from it (arrival times, request bodies, the calibration check)."""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from gsch.clusters.durations import DurationModel
from gsch.clusters.topology import Topology, TopologyError, load_topology
from gsch.model.request import POLICY_ALIASES

# Baselines built from GSelectedCluster's listed order (see the scenario file).
RANDOM = "random"
NAME_ORDER = "name-order"


class ScenarioError(Exception):
    """The scenario file is invalid; the message names the place."""


class SeedResult(msgspec.Struct, forbid_unknown_fields=True):
    without_low_latency: float
    with_low_latency: float


class Video(msgspec.Struct, forbid_unknown_fields=True):
    cpu: str = "8"
    memory: str = "16Gi"


class PolicySpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    policy: str


class Pattern(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    arrivals: Literal["one-at-a-time", "bursts", "poisson"]
    videos: int
    bursts: int = 1
    mean_interval: float = 60.0  # modelled seconds between Poisson arrivals, on average


class Sweep(msgspec.Struct, forbid_unknown_fields=True):
    scenario: str
    far_cluster: str
    far_ms: list[float]


class ScenarioFile(msgspec.Struct, forbid_unknown_fields=True):
    topology: str
    levels: list[list[str]]
    seed_result: SeedResult
    policies: list[PolicySpec]
    scenarios: list[Pattern]
    video: Video = msgspec.field(default_factory=Video)
    time_scale: float = 0.01
    workers: int = 2
    seed: int = 17
    sweep: Sweep | None = None


@dataclass(frozen=True)
class Scenario:
    path: Path
    spec: ScenarioFile
    topology: Topology
    model: DurationModel  # the topology's
    source: tuple[str, str]  # where every video comes from (the model's source)

    def with_far_ms(self, far_ms: float) -> Topology:
        """The test bed with the far cluster `far_ms` from the source."""
        sweep = self.spec.sweep
        if sweep is None:
            raise ScenarioError("the scenario has no [sweep]")
        source_cluster = self.source[0]
        latency = {a: dict(b) for a, b in self.topology.cluster_latency.items()}
        latency.setdefault(source_cluster, {})[sweep.far_cluster] = far_ms
        latency.setdefault(sweep.far_cluster, {})[source_cluster] = far_ms
        return msgspec.structs.replace(self.topology, cluster_latency=latency)

    def alone(self, topology: Topology, cluster: str) -> float:
        """One video's modelled time alone in the fleet on `cluster` (no queue)."""
        model = self.model
        rtt = topology.rtt(self.source, cluster, "") or 0.0
        return model.base_seconds + model.per_ms_seconds * rtt + sum(s for _, s in model.shared)


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        spec = msgspec.convert(tomllib.loads(path.read_text()), ScenarioFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ScenarioError(f"scenario {path}: {exc}") from exc
    try:
        topology = load_topology(path.parent / spec.topology)
    except TopologyError as exc:
        raise ScenarioError(f"scenario {path}: {exc}") from exc
    model = topology.workloads
    if model is None or model.source is None:
        raise ScenarioError(f"scenario {path}: its topology needs [workloads] with a source")
    clusters = {c.name for c in topology.clusters}
    for level in spec.levels:
        for name in level:
            if name not in clusters:
                raise ScenarioError(f"scenario {path}: levels name unknown cluster {name}")
    for policy in spec.policies:
        if policy.policy not in (RANDOM, NAME_ORDER) and policy.policy not in POLICY_ALIASES:
            raise ScenarioError(f"scenario {path}: unknown policy {policy.policy!r}")
    names = {pattern.name for pattern in spec.scenarios}
    if spec.sweep is not None and (
        spec.sweep.scenario not in names or spec.sweep.far_cluster not in clusters
    ):
        raise ScenarioError(f"scenario {path}: the sweep names an unknown scenario or cluster")
    if not 0 < spec.time_scale <= 1:
        raise ScenarioError(f"scenario {path}: time_scale must be in (0, 1]")
    return Scenario(path, spec, topology, model, model.source)


def poisson_offsets(pattern: Pattern, seed: int) -> list[float]:
    """Modelled seconds from the first arrival, exponential gaps (the same for every policy)."""
    chooser = random.Random(f"{seed}/{pattern.name}")
    offsets, at = [], 0.0
    for _ in range(pattern.videos):
        offsets.append(at)
        at += chooser.expovariate(1.0 / pattern.mean_interval)
    return offsets


def request_body(
    scenario: Scenario, policy: PolicySpec, request_id: str, chooser: random.Random
) -> dict[str, Any]:
    """One video's request in gsch's native form. Every request names the source (the
    master): the low-latency policy ranks from it, the others ignore it."""
    level = [name for level in scenario.spec.levels for name in level]
    body: dict[str, Any] = {"request_id": request_id, "policy": policy.policy}
    if policy.policy == RANDOM:
        workers = {c.name: len(c.nodes) for c in scenario.topology.clusters}
        first = chooser.choices(level, [workers[name] for name in level])[0]
        body |= {
            "policy": "GSelectedCluster",
            "select_clusters": [first] + [n for n in level if n != first],
        }
    elif policy.policy == NAME_ORDER:
        body |= {"policy": "GSelectedCluster", "select_clusters": sorted(level)}
    else:
        body["select_clusters"] = scenario.spec.levels
    cluster, node = scenario.source
    body["source"] = {"cluster": cluster, "node": node}
    video = scenario.spec.video
    body["workload"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": request_id.lower()},
        "spec": {
            "containers": [
                {
                    "name": "yolo4",
                    "image": "yolo4:seed",
                    "resources": {"requests": {"cpu": video.cpu, "memory": video.memory}},
                }
            ]
        },
    }
    return body
