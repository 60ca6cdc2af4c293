"""Every event gsch appends to the log, as one tagged union.

Request events live on `gsch.events.req.<request id>.<type>`, cluster events on
`gsch.events.cluster.<cluster>[.node.<node>].<type>`; latency and pod reports, current values
rather than history, on the telemetry stream (`gsch.telemetry.<cluster>.latency|pods.<node>.
<type>`). The subject layout is owned by
`gsch.eventstore.subjects`; this module only defines the payloads.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gsch.model.request import QueueLevel, Request
from gsch.model.resources import Resources


class Event(msgspec.Struct, frozen=True, tag_field="type", kw_only=True, omit_defaults=True):
    at: float


# --- request lifecycle -------------------------------------------------------------------


class Placement(msgspec.Struct, frozen=True, omit_defaults=True):
    cluster: str
    node: str
    amount: Resources


class LevelTrace(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one level of a request saw: its candidates, why clusters were rejected, the scores."""

    index: int
    candidates: tuple[str, ...]
    rejections: dict[str, list[str]] = msgspec.field(default_factory=dict)
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    chosen: str | None = None
    # Per cluster (or "note N" for the level): what the ranking could not measure.
    notes: dict[str, str] = msgspec.field(default_factory=dict)
    # Fields below came later; their defaults keep older events decoding.
    used: bool = False  # this level placed the request
    # Per score plugin, the best few entries (cluster/node, or cluster for a cluster ranking).
    plugin_scores: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    # The node filters' rejections over the whole level, by reason: "12/40 nodes".
    filtered: dict[str, str] = msgspec.field(default_factory=dict)


class Explanation(msgspec.Struct, frozen=True, omit_defaults=True):
    levels: tuple[LevelTrace, ...] = ()
    summary: str = ""


class RequestAccepted(Event, frozen=True, kw_only=True):
    request: Request
    intake_seq: int
    level: QueueLevel
    # The digest of the body it came in (`gsch.model.digest`): a later message under the
    # same id with another body is a conflict, with the same body a duplicate.
    digest: str = ""


class RequestRejected(Event, frozen=True, kw_only=True):
    request_id: str
    reason: str
    field: str | None = None
    form: str | None = None
    intake_seq: int = 0
    excerpt: str = ""
    digest: str = ""
    # The callback URL the sender named (an allowed one): told of the rejection too.
    callback_url: str | None = None


class RequestClaimed(Event, frozen=True, kw_only=True):
    attempt: int
    worker: str


class PlacementCommitted(Event, frozen=True, kw_only=True):
    attempt: int
    placements: tuple[Placement, ...]
    level_index: int
    explanation: Explanation
    worker: str


class RequestRequeued(Event, frozen=True, kw_only=True):
    """An attempt failed; the request waits for attempt `attempt` no earlier than `not_before`.

    `level` is the queue level the retry is dispatched at (First after more than K* failures;
    the fast flag survives retries). `blocked`: nothing could hold it, so it waits for capacity
    to be freed rather than only for the backoff to pass."""

    attempt: int
    reason: str
    not_before: float
    explanation: Explanation | None = None
    level: QueueLevel = QueueLevel.BASE
    blocked: bool = False
    # Clusters that refused this request's binding: the next attempt places it elsewhere
    # when it can (and on them again only when nothing else fits).
    avoid_clusters: tuple[str, ...] = ()


class RequestFailed(Event, frozen=True, kw_only=True):
    attempt: int
    reasons: tuple[str, ...]
    explanation: Explanation | None = None


class RequestBound(Event, frozen=True, kw_only=True):
    attempt: int
    placements: tuple[Placement, ...]


class WorkloadFinished(Event, frozen=True, kw_only=True):
    attempt: int


class RequestCancelled(Event, frozen=True, kw_only=True):
    """The request was cancelled before it reached a final state.

    `placements` are the placements it held when cancelled (their capacity is released in the
    same batch); a binder removes whatever it applied for them."""

    attempt: int
    reason: str
    placements: tuple[Placement, ...] = ()


class CancelRecorded(Event, frozen=True, kw_only=True):
    """A cancel for a request id the log does not know yet. It is no request event: the
    request is not listed until it arrives, and then it is cancelled at once if it was
    published within the configured time after this; later, the cancel has expired."""

    reason: str


class RequestIdConflict(Event, frozen=True, kw_only=True):
    """A message reused a request id with another body: refused, the original untouched.
    Kept apart from the request's own history (`gsch.events.conflict.<id>.*`), so recording
    it never disturbs the request's decisions in flight."""

    request_id: str
    intake_seq: int  # the refused message
    digest: str  # of the refused body
    original_intake_seq: int
    original_digest: str
    reason: str
    excerpt: str = ""


# --- callbacks (gsch.events.callback.<id>.*, apart from the request's history) ---------


class _CallbackAttempt(Event, frozen=True, kw_only=True):
    """One call to a request's callback URL about its settling event `settled_seq`."""

    request_id: str
    settled_seq: int
    state: str  # what was told: bound, failed, rejected, cancelled
    url: str
    attempt: int


class CallbackDelivered(_CallbackAttempt, frozen=True, kw_only=True):
    """The receiver took the result."""

    status: int  # the receiver's HTTP status


class CallbackFailed(_CallbackAttempt, frozen=True, kw_only=True):
    """The call failed; `final`: the notifier gave up (or the host is not allowed)."""

    error: str
    final: bool = False
    retry_after: float = 0.0  # seconds, when not final


# --- tenancy (gsch.events.tenancy.*): projects and workspaces declared as data ---------


class ProjectSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A project as data: where its requests may be placed, and its workspace (GEdge's
    hierarchy). What its workloads may do (Pod Security level, extra namespaces, service
    accounts, exemptions) stays in the reviewed configuration (`[projects.<name>]`), which
    binders and agents read too; a project declared as data gets the installation's
    defaults."""

    clusters: tuple[str, ...] = ()
    selectors: tuple[str, ...] = ()
    workspace: str | None = None


class WorkspaceSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A workspace as data: GEdge's `{workspace_name, workspace_uid, select_clusters,
    user_name}`. Its uid names its namespaces under the uid rule."""

    uid: str | None = None
    user_name: str | None = None
    clusters: tuple[str, ...] = ()


class ProjectDeclared(Event, frozen=True, kw_only=True):
    name: str
    spec: ProjectSpec
    by: str = ""  # who declared it (the API's client, the CLI's user)


class ProjectRemoved(Event, frozen=True, kw_only=True):
    name: str
    by: str = ""


class WorkspaceDeclared(Event, frozen=True, kw_only=True):
    name: str
    spec: WorkspaceSpec
    by: str = ""


class WorkspaceRemoved(Event, frozen=True, kw_only=True):
    name: str
    by: str = ""


# --- cluster state -----------------------------------------------------------------------


class ClusterDeclared(Event, frozen=True, kw_only=True):
    cluster: str
    tier: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    ready: bool = True
    # host:port of the cluster's API server (Kubernetes members): a latency probe target.
    endpoint: str = ""


class Taint(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str
    effect: str
    value: str = ""


class NodeDeclared(Event, frozen=True, kw_only=True):
    cluster: str
    node: str
    allocatable: Resources
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    # Resources held by pods gsch did not place (system pods, other schedulers).
    foreign: Resources = Resources()
    # The node's addresses, internal ones first (latency probe targets).
    addresses: tuple[str, ...] = ()


class CapacityReserved(Event, frozen=True, kw_only=True):
    cluster: str
    node: str
    request_id: str
    attempt: int
    amount: Resources


class CapacityReleased(Event, frozen=True, kw_only=True):
    cluster: str
    node: str
    request_id: str
    attempt: int
    reason: str


class LatencyReported(Event, frozen=True, kw_only=True):
    """Round-trip times in milliseconds from one node to clusters and to other nodes.

    `to_clusters`/`to_nodes` are smoothed (EWMA) where a probe measured them; the `_p95`
    maps, when present, hold the 95th percentile of the recent samples."""

    cluster: str
    node: str
    to_clusters: dict[str, float] = msgspec.field(default_factory=dict)
    to_nodes: dict[str, float] = msgspec.field(default_factory=dict)
    to_clusters_p95: dict[str, float] = msgspec.field(default_factory=dict)
    to_nodes_p95: dict[str, float] = msgspec.field(default_factory=dict)


class PodsReported(Event, frozen=True, kw_only=True):
    """The pods running on one node (`namespace/name`), so a pod can be resolved to its node."""

    cluster: str
    node: str
    pods: tuple[str, ...] = ()


# --- retention ---------------------------------------------------------------------------


class ExpiredRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    request_id: str
    state: str  # the final state it ended in (failed, cancelled, rejected, bound = finished)
    ended_at: float


class RequestsExpired(Event, frozen=True, kw_only=True):
    """Retention removed these finished requests' events from the log (after
    `retention.finished_requests`). The read model keeps each id, so the API can say it
    expired (410), until `forget_before`: ids that expired before then are forgotten (404)."""

    requests: tuple[ExpiredRequest, ...]
    forget_before: float = 0.0


AnyEvent = (
    RequestAccepted
    | RequestRejected
    | RequestClaimed
    | PlacementCommitted
    | RequestRequeued
    | RequestFailed
    | RequestBound
    | WorkloadFinished
    | RequestCancelled
    | CancelRecorded
    | RequestIdConflict
    | CallbackDelivered
    | CallbackFailed
    | ProjectDeclared
    | ProjectRemoved
    | WorkspaceDeclared
    | WorkspaceRemoved
    | ClusterDeclared
    | NodeDeclared
    | CapacityReserved
    | CapacityReleased
    | LatencyReported
    | PodsReported
    | RequestsExpired
)

REQUEST_EVENTS: tuple[type[Event], ...] = (
    RequestAccepted,
    RequestRejected,
    RequestClaimed,
    PlacementCommitted,
    RequestRequeued,
    RequestFailed,
    RequestBound,
    WorkloadFinished,
    RequestCancelled,
)

# Recorded about a request but outside its history; listed with its events.
CALLBACK_EVENTS: tuple[type[Event], ...] = (CallbackDelivered, CallbackFailed)
TENANCY_EVENTS: tuple[type[Event], ...] = (
    ProjectDeclared,
    ProjectRemoved,
    WorkspaceDeclared,
    WorkspaceRemoved,
)

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    result: AnyEvent = _decoder.decode(data)
    return result


def event_type(event: Event) -> str:
    return type(event).__name__
