"""How long a simulated workload runs, from where it was placed: the duration model.

    runtime = base_seconds + per_ms_seconds x RTT(source node, chosen node)

then, for each shared resource in order (e.g. the master's one GPU), a turn of `seconds` on
it, first come first served among every workload of the fleet. The workload holds its
node's reservation until the last turn ends. A topology declares the model in `[workloads]`;
a request refines it with annotations on its first manifest:

    gsch.io/sim-source: "master/master"            # the data's source node, cluster/node
    gsch.io/sim-base-seconds: "64.2"
    gsch.io/sim-per-ms-seconds: "4.175"
    gsch.io/sim-shared-seconds: "master-gpu=30"    # name=seconds, comma-separated

The source is, in this order: the annotation, the request's own `source` (a node, or a pod
the topology runs), the topology's `source`. No I/O here: the simulator runs the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from gsch.model.request import Request

ANNOTATION = "gsch.io/sim-"
SOURCE = ANNOTATION + "source"
BASE = ANNOTATION + "base-seconds"
PER_MS = ANNOTATION + "per-ms-seconds"
SHARED = ANNOTATION + "shared-seconds"


# A round trip in ms from a source node (cluster, node) to a node (cluster, node), or None.
RoundTrip = Callable[[tuple[str, str], str, str], float | None]
# The node a pod ("namespace/name") of a cluster runs on, or None.
PodNode = Callable[[str, str], str | None]


class DurationError(ValueError):
    """A duration cannot be worked out; the message says what is wrong, and where."""


class SharedSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    seconds: float


class WorkloadsSpec(msgspec.Struct, forbid_unknown_fields=True):
    """`[workloads]` of a topology file."""

    source: str | None = None  # "cluster/node"
    base_seconds: float = 0.0
    per_ms_seconds: float = 0.0
    shared: list[SharedSpec] = msgspec.field(default_factory=list)


class Run(msgspec.Struct, frozen=True):
    """One workload's run, in modelled seconds: on its node, then a turn on each shared
    resource in order. `rtt_ms` is the round trip the node part was charged for."""

    node_seconds: float
    shared: tuple[tuple[str, float], ...] = ()
    rtt_ms: float | None = None

    @property
    def alone(self) -> float:
        """How long it takes when no shared resource keeps it waiting."""
        return self.node_seconds + sum(seconds for _, seconds in self.shared)


def _seconds(value: Any, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DurationError(f"{where}: {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"{where}: {value!r} is not a number of seconds (0 or more)")
    return seconds


def _node(value: str, where: str) -> tuple[str, str]:
    cluster, slash, node = value.partition("/")
    if not slash or not cluster or not node:
        raise DurationError(f"{where}: {value!r} is not cluster/node")
    return cluster, node


def _shared(value: str, where: str) -> tuple[tuple[str, float], ...]:
    turns = []
    for part in value.split(","):
        name, equals, seconds = part.strip().partition("=")
        if not equals or not name:
            raise DurationError(f"{where}: {part.strip()!r} is not name=seconds")
        turns.append((name, _seconds(seconds, f"{where} {name}")))
    return tuple(turns)


class DurationModel(msgspec.Struct, frozen=True):
    source: tuple[str, str] | None
    base_seconds: float
    per_ms_seconds: float
    shared: tuple[tuple[str, float], ...]

    @classmethod
    def from_spec(cls, spec: WorkloadsSpec) -> DurationModel:
        source = _node(spec.source, "workloads.source") if spec.source else None
        base = _seconds(spec.base_seconds, "workloads.base_seconds")
        per_ms = _seconds(spec.per_ms_seconds, "workloads.per_ms_seconds")
        shared = tuple(
            (turn.name, _seconds(turn.seconds, f"workloads.shared {turn.name}"))
            for turn in spec.shared
        )
        return cls(source, base, per_ms, shared)

    def run(
        self,
        request: Request | None,
        placed: tuple[str, str],
        rtt: RoundTrip,
        pod_node: PodNode,
    ) -> Run:
        """The run of `request` placed on `placed` (cluster, node). `rtt(source, cluster,
        node)` gives a round trip in ms or None; `pod_node(cluster, pod)` where a pod runs."""
        notes = _annotations(request)
        base = _seconds(notes[BASE], f"annotation {BASE}") if BASE in notes else self.base_seconds
        per_ms = (
            _seconds(notes[PER_MS], f"annotation {PER_MS}")
            if PER_MS in notes
            else self.per_ms_seconds
        )
        shared = _shared(notes[SHARED], f"annotation {SHARED}") if SHARED in notes else self.shared
        if per_ms == 0:
            return Run(base, shared)
        source = self._source(request, notes, pod_node)
        found = rtt(source, *placed)
        if found is None:
            where = "/".join(placed)
            raise DurationError(f"no round trip known from {'/'.join(source)} to {where}")
        return Run(base + per_ms * found, shared, found)

    def _source(
        self, request: Request | None, notes: dict[str, str], pod_node: PodNode
    ) -> tuple[str, str]:
        if SOURCE in notes:
            return _node(notes[SOURCE], f"annotation {SOURCE}")
        given = request.source if request is not None else None
        if given is not None and given.node:
            return given.cluster, given.node
        if given is not None and given.pod and request is not None:
            node = pod_node(given.cluster, request.pod_key(given.pod))
            if node is not None:
                return given.cluster, node
        if self.source is None:
            raise DurationError(
                "the duration depends on the round trip from a source, and neither the"
                f" request ({SOURCE} or its source) nor the topology (workloads.source) names one"
            )
        return self.source


def _annotations(request: Request | None) -> dict[str, str]:
    """The first manifest's gsch.io/sim-* annotations."""
    if request is None or not request.workload:
        return {}
    metadata = request.workload[0].get("metadata")
    found = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: str(v) for k, v in found.items() if isinstance(k, str) and k.startswith(ANNOTATION)}
