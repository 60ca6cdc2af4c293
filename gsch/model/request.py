"""The one typed scheduling request that every accepted wire form decodes into."""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from gsch.model.admission.namespaces import namespace_of
from gsch.model.affinity import Terms
from gsch.model.resources import Resources


class Policy(enum.StrEnum):
    LOW_LATENCY = "GLowLatencyPriority"
    MOST_REQUESTED = "GMostRequestedPriority"
    SELECTED_CLUSTER = "GSelectedCluster"
    SET_CLUSTERS = "GSetClusters"
    BIN_PACK = "GBinPackPriority"
    LEAST_REQUESTED = "GLeastRequestedPriority"
    BALANCED = "GBalancedPriority"


# GEdge's UI and its server disagree on spellings; both are accepted and normalised.
POLICY_ALIASES: dict[str, Policy] = {
    **{p.value: p for p in Policy},
    # GEdge's UI (gm-tool) and its scheduler's code and README:
    "GMostRequestPriority": Policy.MOST_REQUESTED,
    "GSetCluster": Policy.SET_CLUSTERS,
    "GSetClusterPriority": Policy.SET_CLUSTERS,
    "GSelectedClusterPriority": Policy.SELECTED_CLUSTER,
    "GSelectClusterPriority": Policy.SELECTED_CLUSTER,
    "GSelectCluster": Policy.SELECTED_CLUSTER,
    "low-latency": Policy.LOW_LATENCY,  # v1.5 test YAMLs (a PodPreset's gschConfig)
}

MODE_ALIASES: dict[str, str] = {"from_node": "fromnode", "from_pod": "frompod"}

# Modes per policy; the first one is the default when a request names none (or "default").
POLICY_MODES: dict[Policy, tuple[str, ...]] = {
    Policy.LOW_LATENCY: ("fromnode", "frompod"),
    Policy.MOST_REQUESTED: ("default", "cpu", "memory", "gpu"),
    Policy.SELECTED_CLUSTER: ("cluster", "node"),
    Policy.SET_CLUSTERS: ("default",),
    Policy.BIN_PACK: ("default", "mostallocated"),  # fewest nodes; kube's MostAllocated
    Policy.LEAST_REQUESTED: ("default",),
    Policy.BALANCED: ("default",),
}

# A request id becomes one token of a NATS subject and a path segment of the API.
# `\Z`, not `$`: `$` also matches before a final newline, and "req-1\n" must not pass.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}\Z")
# Cluster and node names follow Kubernetes DNS-1123 subdomain rules (dots allowed).
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")


# A level entry may be a label selector instead of a name: key=value, requirements joined by
# "&" (all must hold), e.g. "tier=near-edge" or "tier=edge&region=kr".
_LABEL_KEY = r"([A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?)"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
SELECTOR_PATTERN = re.compile(rf"^{_LABEL_KEY}={_LABEL_VALUE}(&{_LABEL_KEY}={_LABEL_VALUE})*\Z")


def is_selector(entry: str) -> bool:
    return "=" in entry


def selector_requirements(entry: str) -> tuple[tuple[str, str], ...]:
    """("tier", "edge"), ... of a selector entry (validated at intake)."""
    return tuple(
        (key, value) for key, _, value in (part.partition("=") for part in entry.split("&"))
    )


class QueueLevel(enum.StrEnum):
    FIRST = "first"
    FAST = "fast"
    BASE = "base"


class Source(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where the data a low-latency workload consumes comes from."""

    cluster: str
    node: str | None = None
    pod: str | None = None


class Request(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A validated scheduling request.

    `levels` are tried in order; the clusters inside one level compete and the policy ranks
    them. `demand` is what one placement reserves on the chosen node: the per-pod requests of
    the workload times its replicas, with `pods` counting the replicas.
    """

    request_id: str
    policy: Policy
    mode: str
    levels: tuple[tuple[str, ...], ...] = ()
    select_node: str | None = None
    source: Source | None = None
    user_name: str | None = None
    workspace_name: str | None = None
    workspace_uid: str | None = None
    project_name: str | None = None
    namespace: str | None = None
    fast: bool = False
    form: str = "native"
    # Where the request's result is POSTed when it settles (host on callbacks.allowed_hosts).
    callback_url: str | None = None
    workload: tuple[dict[str, Any], ...] = ()
    demand: Resources = Resources()
    node_selector: dict[str, str] = msgspec.field(default_factory=dict)
    # Required node affinity: terms ORed, requirements of a term ANDed (see model.affinity).
    node_affinity: Terms = ()

    def pod_key(self, pod: str) -> str:
        """A pod the request names, as `namespace/name`: a bare name is taken in the
        namespace gsch applies the request in (its `namespace`, else
        `<project>-<workspace>`, else "default")."""
        if "/" in pod:
            return pod
        return f"{namespace_of(self.project_name, self.workspace_name, self.namespace)}/{pod}"
