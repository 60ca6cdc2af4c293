"""gsch's agent protocol: the messages between the central binder and cluster agents.

It is gsch's own protocol, not GEdge's. Its envelope is shaped like the one GEdge's cluster
agents exchange over Kafka (`{source, target, hcode, lcode, msg}`, reference/
gedge-gs-scheduler.md §2.2): `hcode` selects the function, `lcode` 1 is a request, 2 its
response, 3 a notice. But GEdge's agents cannot speak it and gsch's cannot speak theirs:
the transport is NATS request/reply on one subject per cluster and function (no broadcast
topic every agent filters, no reply topic per request: NATS correlates the reply), a GEdge
`target.object` may be a list (one message, many agents) where gsch addresses one cluster,
and GEdge's functions (measure latency, apply with GEdge's local scheduler, report resources,
create namespaces) are not gsch's (agents publish inventory and latency as events; gsch
places, the agent applies). A GEdge installation replaces its agents with `gsch agent`.

So that no code means one thing in GEdge and another in gsch, gsch's codes are only those
GEdge never used, or used for the same thing:

| hcode | GEdge (Kafka) | gsch (NATS) |
|---|---|---|
| 200 | measure latency from a node | not used |
| 210, 300, 310 | apply with the local scheduler, report resources | not used |
| 400 | apply a workload (GSelectedCluster) | `bind`: apply a placement's workload |
| 410 | — | `remove`: delete what a request applied |
| 520, 530 | create namespaces, find a pod's node | not used |
| 600 | — | `heartbeat`: the agent is alive (lcode 3, a notice) |
| 900 | error | error (lcode 2) |

- `gsch.agent.<cluster>.bind`: hcode 400, lcode 1 → 2; msg `BindOrder` → `Outcome`.
- `gsch.agent.<cluster>.remove`: hcode 410, lcode 1 → 2; msg `BindOrder` → `Outcome`.
- `gsch.agent.<cluster>.heartbeat`: hcode 600, lcode 3 (nobody answers); msg `Heartbeat`.
  Every `kube.agent_heartbeat_seconds`, on core NATS: the binder declares the cluster not
  ready when no agent of it has spoken for `kube.agent_silence_seconds`.
- any of them: hcode 900, lcode 2; msg `Outcome` with status `error`: the request was not
  understood (not an envelope, wrong target, unknown hcode).

`Outcome.status`: `success` (applied / removed), `fail` (the cluster refused: the API's status
and reason in `error_msg`; the binder retries elsewhere), `error` (as hcode 900).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gsch.eventstore.subjects import token
from gsch.model.events import Placement
from gsch.model.request import Request

HCODE_HEARTBEAT = 600  # not 200: GEdge's 200 is "measure latency"
HCODE_BIND = 400
HCODE_REMOVE = 410
HCODE_ERROR = 900
LCODE_REQUEST = 1
LCODE_RESPONSE = 2
LCODE_NOTICE = 3

SUBJECT_OF = {HCODE_BIND: "bind", HCODE_REMOVE: "remove"}


def agent_subject(cluster: str, hcode: int) -> str:
    return f"gsch.agent.{token(cluster)}.{SUBJECT_OF[hcode]}"


def heartbeat_subject(cluster: str) -> str:
    return f"gsch.agent.{token(cluster)}.heartbeat"


HEARTBEATS = "gsch.agent.*.heartbeat"


class Party(msgspec.Struct, frozen=True):
    type: str  # "cluster" (one cluster: GEdge's list targets have no equivalent)
    object: str


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    source: Party
    target: Party
    hcode: int
    lcode: int
    msg: dict[str, Any] = msgspec.field(default_factory=dict)


class BindOrder(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    attempt: int
    placements: tuple[Placement, ...]
    request: Request


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    node: str = ""
    # What the agent would declare of its cluster now: its API server answers and the first
    # lists are in (None: not known yet).
    ready: bool | None = None


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str = ""
    status: Literal["success", "fail", "error"]
    error_msg: str = ""


_decoder = msgspec.json.Decoder(Envelope)


def encode(envelope: Envelope) -> bytes:
    return msgspec.json.encode(envelope)


def decode(data: bytes) -> Envelope:
    """Raises msgspec.ValidationError / DecodeError on anything that is not an envelope."""
    return _decoder.decode(data)


def payload(struct: msgspec.Struct) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(struct)
    return result


def reply(request: Envelope, outcome: Outcome, hcode: int | None = None) -> Envelope:
    """The response to `request`: source and target swapped, lcode 2."""
    return Envelope(
        source=request.target,
        target=request.source,
        hcode=request.hcode if hcode is None else hcode,
        lcode=LCODE_RESPONSE,
        msg=payload(outcome),
    )
