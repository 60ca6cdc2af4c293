"""Subject layout of the event log and the work streams.

Names from the outside world (cluster and node names may contain dots) become single subject
tokens through `token()`, a reversible escape, so no name can reach into another subject.
"""

from __future__ import annotations

import re

EVENTS_STREAM = "GSCH_EVENTS"
INTAKE_STREAM = "GSCH_INTAKE"
INTAKE_SUBJECT = "gsch.requests"

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


ALL_REQUEST_EVENTS = "gsch.events.req.>"
ALL_CLUSTER_EVENTS = "gsch.events.cluster.>"
ALL_EVENTS = "gsch.events.>"


def cluster_subject(cluster: str, event_type: str) -> str:
    return f"gsch.events.cluster.{token(cluster)}.{event_type}"


def node_subject(cluster: str, node: str, event_type: str) -> str:
    return f"gsch.events.cluster.{token(cluster)}.node.{token(node)}.{event_type}"


def node_history(cluster: str, node: str) -> str:
    """Every event of one node: inventory and reservations (the scope of a capacity check)."""
    return f"gsch.events.cluster.{token(cluster)}.node.{token(node)}.>"


def latency_subject(cluster: str, node: str, event_type: str) -> str:
    # Under the cluster, but outside every node scope: a latency report never conflicts
    # with a capacity reservation.
    return f"gsch.events.cluster.{token(cluster)}.latency.{token(node)}.{event_type}"


def pods_subject(cluster: str, node: str, event_type: str) -> str:
    # Outside the node scope too: pods coming and going must not conflict with reservations.
    return f"gsch.events.cluster.{token(cluster)}.pods.{token(node)}.{event_type}"


def request_id_of(subject: str) -> str:
    """The request id of a `gsch.events.req.<id>.<type>` subject."""
    return untoken(subject.split(".")[3])
