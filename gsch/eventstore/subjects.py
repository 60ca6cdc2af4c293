"""Subject layout of the event log and the work streams.

Names from the outside world (cluster and node names may contain dots) become single subject
tokens through `token()`, a reversible escape, so no name can reach into another subject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENTS_STREAM = "GSCH_EVENTS"
# Latency and pod reports: current values, one message per node and kind (the stream keeps
# only the newest on each subject), apart from the log so the log holds only history.
TELEMETRY_STREAM = "GSCH_TELEMETRY"
ALL_TELEMETRY = "gsch.telemetry.>"
INTAKE_STREAM = "GSCH_INTAKE"
INTAKE_SUBJECT = "gsch.requests"
CANCEL_SUBJECT = "gsch.cancel"  # cancel commands, on the intake stream too
# Workers' commit intents, `gsch.intents.<worker>`: core NATS only, never stored.
INTENT_SUBJECTS = "gsch.intents"

_SAFE = re.compile(r"[A-Za-z0-9_:-]")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_:-]+")


def token(name: str) -> str:
    """Escape a name into one NATS subject token (`.`, `*`, `>`, `%` and space become %XX)."""
    if not name:
        raise ValueError("an empty name cannot be a subject token")
    if _ALL_SAFE.fullmatch(name):
        return name
    out = []
    for char in name:
        if _SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode())
    return "".join(out)


def untoken(text: str) -> str:
    if "%" not in text:
        return text  # nothing escaped (most names): read every time a subject is parsed
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            raw.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(text[i].encode())
            i += 1
    return raw.decode()


def request_subject(request_id: str, event_type: str) -> str:
    return f"gsch.events.req.{token(request_id)}.{event_type}"


def request_history(request_id: str) -> str:
    """Every event of one request (the optimistic-concurrency scope of a request)."""
    return f"gsch.events.req.{token(request_id)}.>"


def request_events_of_type(event_type: str) -> str:
    return f"gsch.events.req.*.{event_type}"


def cluster_events_of_type(event_type: str) -> str:
    """One type of every cluster's own events (not its nodes')."""
    return f"gsch.events.cluster.*.{event_type}"


ALL_REQUEST_EVENTS = "gsch.events.req.>"
ALL_CLUSTER_EVENTS = "gsch.events.cluster.>"
ALL_EXPIRY_EVENTS = "gsch.events.expired.>"
ALL_EVENTS = "gsch.events.>"


def cluster_subject(cluster: str, event_type: str) -> str:
    return f"gsch.events.cluster.{token(cluster)}.{event_type}"


def node_subject(cluster: str, node: str, event_type: str) -> str:
    return f"gsch.events.cluster.{token(cluster)}.node.{token(node)}.{event_type}"


def node_history(cluster: str, node: str) -> str:
    """Every event of one node: inventory and reservations (the scope of a capacity check)."""
    return f"gsch.events.cluster.{token(cluster)}.node.{token(node)}.>"


def latency_subject(cluster: str, node: str, event_type: str) -> str:
    # On the telemetry stream, outside every scope of the log: a latency report never
    # conflicts with a capacity reservation.
    return f"gsch.telemetry.{token(cluster)}.latency.{token(node)}.{event_type}"


def pods_subject(cluster: str, node: str, event_type: str) -> str:
    # On the telemetry stream too: pods coming and going never conflict with reservations.
    return f"gsch.telemetry.{token(cluster)}.pods.{token(node)}.{event_type}"


def stream_of(subject: str) -> str:
    """The stream holding `subject` (a wildcard too): the telemetry stream or the log."""
    return TELEMETRY_STREAM if subject.startswith("gsch.telemetry.") else EVENTS_STREAM


# --- entities: what an event is about, and its subjects -----------------------------------


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A scheduling request: `gsch.events.req.<id>.<type>`."""

    request_id: str

    def subject(self, event_type: str) -> str:
        return request_subject(self.request_id, event_type)

    @property
    def history(self) -> str:
        return request_history(self.request_id)


@dataclass(frozen=True, slots=True)
class ConflictKey:
    """Messages that reused a request id with another body: `gsch.events.conflict.<id>.<type>`,
    outside the request's history, so recording one never invalidates its decisions."""

    request_id: str

    def subject(self, event_type: str) -> str:
        return f"gsch.events.conflict.{token(self.request_id)}.{event_type}"

    @property
    def history(self) -> str:
        return f"gsch.events.conflict.{token(self.request_id)}.*"


@dataclass(frozen=True, slots=True)
class CallbackKey:
    """What a request's callback URL was told: `gsch.events.callback.<id>.<type>`, outside the
    request's history (recording a delivery never invalidates a decision in flight)."""

    request_id: str

    def subject(self, event_type: str) -> str:
        return f"gsch.events.callback.{token(self.request_id)}.{event_type}"

    @property
    def history(self) -> str:
        return f"gsch.events.callback.{token(self.request_id)}.*"


TENANCY_KINDS = ("project", "workspace")
ALL_TENANCY_EVENTS = "gsch.events.tenancy.>"


@dataclass(frozen=True, slots=True)
class TenancyKey:
    """A project or a workspace declared as data: `gsch.events.tenancy.<kind>.<name>.<type>`."""

    kind: str  # project | workspace
    name: str

    def subject(self, event_type: str) -> str:
        return f"gsch.events.tenancy.{self.kind}.{token(self.name)}.{event_type}"

    @property
    def history(self) -> str:
        return f"gsch.events.tenancy.{self.kind}.{token(self.name)}.*"


@dataclass(frozen=True, slots=True)
class ClusterKey:
    """A member cluster's own declaration: `gsch.events.cluster.<cluster>.<type>`."""

    cluster: str

    def subject(self, event_type: str) -> str:
        return cluster_subject(self.cluster, event_type)

    @property
    def history(self) -> str:
        # Only the cluster's own events, not its nodes' (those are under `.node.`).
        return f"gsch.events.cluster.{token(self.cluster)}.*"


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node: inventory and reservations, one optimistic-concurrency scope."""

    cluster: str
    node: str

    def subject(self, event_type: str) -> str:
        return node_subject(self.cluster, self.node, event_type)

    @property
    def history(self) -> str:
        return node_history(self.cluster, self.node)


@dataclass(frozen=True, slots=True)
class LatencyKey:
    """Latency measured from a node (outside the node's scope: never conflicts with it)."""

    cluster: str
    node: str

    def subject(self, event_type: str) -> str:
        return latency_subject(self.cluster, self.node, event_type)

    @property
    def history(self) -> str:
        return f"gsch.telemetry.{token(self.cluster)}.latency.{token(self.node)}.*"


@dataclass(frozen=True, slots=True)
class PodsKey:
    """The pods a node runs (outside the node's scope too)."""

    cluster: str
    node: str

    def subject(self, event_type: str) -> str:
        return pods_subject(self.cluster, self.node, event_type)

    @property
    def history(self) -> str:
        return f"gsch.telemetry.{token(self.cluster)}.pods.{token(self.node)}.*"


@dataclass(frozen=True, slots=True)
class ExpiryKey:
    """The requests retention removed on one UTC day (`YYYYMMDD`): the record that lets a
    rebuilt read model answer 410 for them, removed itself after `retention.expired_ids`."""

    day: str

    def subject(self, event_type: str) -> str:
        return f"gsch.events.expired.{token(self.day)}.{event_type}"

    @property
    def history(self) -> str:
        return f"gsch.events.expired.{token(self.day)}.*"


EntityKey = (
    RequestKey
    | ConflictKey
    | CallbackKey
    | TenancyKey
    | ClusterKey
    | NodeKey
    | LatencyKey
    | PodsKey
    | ExpiryKey
)

_NODE_PARTS: dict[str, type[NodeKey | LatencyKey | PodsKey]] = {
    "node": NodeKey,
    "latency": LatencyKey,
    "pods": PodsKey,
}


class SubjectError(ValueError):
    """A subject that is not one of the event log's layouts."""


def parse_subject(subject: str) -> tuple[EntityKey, str]:
    """The entity and the event type of an event-log subject (the inverse of `subject()`)."""
    tokens = subject.split(".")
    if tokens[:2] == ["gsch", "events"]:
        match tokens[2:]:
            case ["req", request_id, event_type]:
                return RequestKey(untoken(request_id)), event_type
            case ["conflict", request_id, event_type]:
                return ConflictKey(untoken(request_id)), event_type
            case ["callback", request_id, event_type]:
                return CallbackKey(untoken(request_id)), event_type
            case ["tenancy", kind, name, event_type] if kind in TENANCY_KINDS:
                return TenancyKey(kind, untoken(name)), event_type
            case ["cluster", cluster, event_type]:
                return ClusterKey(untoken(cluster)), event_type
            case ["cluster", cluster, part, node, event_type] if part in _NODE_PARTS:
                return _NODE_PARTS[part](untoken(cluster), untoken(node)), event_type
            case ["expired", day, event_type]:
                return ExpiryKey(untoken(day)), event_type
    if tokens[:2] == ["gsch", "telemetry"]:
        match tokens[2:]:
            case [cluster, "latency" | "pods" as part, node, event_type]:
                return _NODE_PARTS[part](untoken(cluster), untoken(node)), event_type
    raise SubjectError(f"not an event-log subject: {subject[:200]!r}")


def request_key_of(subject: str) -> RequestKey | None:
    """The request a subject belongs to, or None when it is not a request's."""
    try:
        key, _ = parse_subject(subject)
    except SubjectError:
        return None
    return key if isinstance(key, RequestKey) else None
