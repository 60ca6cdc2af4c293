"""What the read model answers, as the HTTP API encodes it.

No field is ever omitted (absent values are null), and every answer carries the stream
sequence of the read-model snapshot it was read from.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from gsch.model.events import Explanation, Taint

Finished = Annotated[
    bool,
    msgspec.Meta(
        description="The workload ran to its end on its cluster and gave its capacity back"
        " (WorkloadFinished). Only a bound request's workload can finish; it stays `bound`."
    ),
]
Final = Annotated[
    bool,
    msgspec.Meta(
        description="The request has come to its end: failed, cancelled or rejected, or its"
        " workload finished (where its change feed ends). A bound request whose workload"
        " runs is not final: it can still be cancelled."
    ),
]


class Amount(msgspec.Struct, frozen=True):
    """Resources with every field spelled out: cpu in millicores, memory in bytes."""

    cpu_m: int = 0
    memory: int = 0
    gpu: int = 0
    pods: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(
            self.cpu_m + other.cpu_m,
            self.memory + other.memory,
            self.gpu + other.gpu,
            self.pods + other.pods,
        )

    def __sub__(self, other: Amount) -> Amount:
        return Amount(
            self.cpu_m - other.cpu_m,
            self.memory - other.memory,
            self.gpu - other.gpu,
            self.pods - other.pods,
        )


class PlacementView(msgspec.Struct, frozen=True):
    cluster: str
    node: str


class RequestSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    state: str
    finished: Finished
    final: Final
    policy: str | None
    mode: str | None
    form: str | None
    level: str | None
    project: str | None
    workspace: str | None
    user: str | None
    fast: bool
    attempts: int
    placement: PlacementView | None  # the first placement (the only one but for GSetClusters)
    placements: tuple[PlacementView, ...]
    reason: str | None
    reason_field: str | None
    submitted_at: float | None
    updated_at: float
    submitted_seq: int
    last_seq: int


class RequestDetail(RequestSummary, frozen=True, kw_only=True):
    not_before: float | None
    explanation: Explanation | None
    sequence: int


class RequestPage(msgspec.Struct, frozen=True, kw_only=True):
    items: tuple[RequestSummary, ...]
    continue_: str | None = msgspec.field(name="continue")
    sequence: int


class EventRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    request_id: str
    type: str
    at: float
    event: msgspec.Raw  # the event as stored in the log


class RequestEvents(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    items: tuple[EventRecord, ...]
    sequence: int


class NodeView(msgspec.Struct, frozen=True, kw_only=True):
    cluster: str
    name: str
    declared: bool  # False: only known from reservations, no inventory reported yet
    ready: bool
    allocatable: Amount
    foreign: Amount  # held by pods gsch did not place
    reserved: Amount  # held by gsch placements
    free: Amount
    reservations: int
    labels: dict[str, str]
    taints: tuple[Taint, ...]


class ClusterSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    declared: bool
    tier: str | None
    labels: dict[str, str]
    ready: bool
    nodes: int
    ready_nodes: int
    allocatable: Amount
    foreign: Amount
    reserved: Amount
    free: Amount


class ClusterDetail(ClusterSummary, frozen=True, kw_only=True):
    sequence: int


class ClusterList(msgspec.Struct, frozen=True, kw_only=True):
    items: tuple[ClusterSummary, ...]
    sequence: int


class NodeList(msgspec.Struct, frozen=True, kw_only=True):
    cluster: str
    items: tuple[NodeView, ...]
    sequence: int


class QueueView(msgspec.Struct, frozen=True, kw_only=True):
    """Unfinished requests of one queue level, by state."""

    level: str
    queued: int  # waiting (first attempt, or requeued with backoff), blocked ones included
    blocked: int  # of those queued: parked until capacity they could use appears
    scheduling: int  # claimed by a worker
    scheduled: int  # placement committed, not bound yet


class QueueList(msgspec.Struct, frozen=True, kw_only=True):
    items: tuple[QueueView, ...]
    sequence: int
