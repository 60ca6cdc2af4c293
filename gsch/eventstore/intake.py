"""Putting a request on the intake queue (`gsch.requests`, the GSCH_INTAKE work queue).

The de-duplication id (`Nats-Msg-Id`) is the request id and the digest of the body,
`<request id>~<digest>`: publishing the same request again within the stream's duplicate
window is acknowledged as a duplicate and stored once, which makes a publish safe to repeat
when no acknowledgement came; the same id with another body is a different message, which a
worker refuses as a conflict (`RequestIdConflict`) instead of the server dropping it unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client

from gsch.eventstore.appends import MSG_ID
from gsch.eventstore.subjects import INTAKE_SUBJECT
from gsch.model.digest import body_digest

PUBLISH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class IntakeAck:
    seq: int  # the request's sequence in the intake stream
    duplicate: bool  # the id was published before (within the duplicate window)


def intake_headers(request_id: str | None, body: bytes) -> dict[str, str] | None:
    return {MSG_ID: f"{request_id}~{body_digest(body)}"} if request_id else None


async def publish_intake(nc: Client, body: bytes, request_id: str | None) -> IntakeAck:
    ack = await nc.jetstream().publish(
        INTAKE_SUBJECT, body, headers=intake_headers(request_id, body), timeout=PUBLISH_TIMEOUT
    )
    return IntakeAck(seq=int(ack.seq), duplicate=bool(ack.duplicate))
