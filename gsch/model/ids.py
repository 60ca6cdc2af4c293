"""Request ids: the key that carries them outside a request body, and every id gsch mints.

A request's id is normally its sender's: the id its body declares, else the `Nats-Msg-Id`
it was published with (the de-duplication id, which a sender of the v4 form, whose documented
shape has no id field, naturally sets). gsch mints one only for a message that came without
either (stable, so a redelivered message keeps its id), for a request it composes on a
client's behalf (API, CLI), and for the series of requests its samples and benchmarks
generate. Every id matches `gsch.model.request.REQUEST_ID_PATTERN`. No I/O.
"""

from __future__ import annotations

import hashlib
import uuid

from gsch.model.request import REQUEST_ID_PATTERN

# The annotation that carries the id of a GEdge v2 (embedded form) request, and the label
# on every object gsch applies to a cluster for a request.
REQUEST_ID_KEY = "gsch.io/request-id"


# Between the request id and the body's digest in a de-duplication id (never in a request id).
DEDUP_SEPARATOR = "~"


def intake_request_id(msg_id: str | None, intake_seq: int, published_ns: int) -> str:
    """The id of a request whose body declares none: its `Nats-Msg-Id` when that is a valid
    request id, else one generated from its place in the intake."""
    if msg_id is not None:
        # gsch's own publishers send `<request id>~<digest of the body>` (eventstore/intake.py);
        # what a client sends is the id alone.
        candidate = msg_id.partition(DEDUP_SEPARATOR)[0]
        if REQUEST_ID_PATTERN.match(candidate):
            return candidate
    return generated_request_id(intake_seq, published_ns)


def generated_request_id(intake_seq: int, published_ns: int) -> str:
    """A stable id for a request that came without one: the same message gets the same id."""
    digest = hashlib.sha256(f"{intake_seq}:{published_ns}".encode()).hexdigest()
    return f"req-{digest[:24]}"


def fresh_request_id(origin: str) -> str:
    """A new, unique id for a request composed by `origin` (`api`: `api-<32 hex>`)."""
    return f"{origin}-{uuid.uuid4().hex}"


def numbered_request_id(series: str, index: int, digits: int = 0) -> str:
    """Id number `index` of a generated series (`demo-0000042`), zero-padded to `digits`.
    The same run makes the same ids, so a repeated publish is deduplicated as it should be."""
    return f"{series}-{index:0{digits}d}"
