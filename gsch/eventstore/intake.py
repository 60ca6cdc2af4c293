"""Putting a request on the intake queue (`gsch.requests`, the GSCH_INTAKE work queue).

The request id doubles as JetStream's de-duplication id (`Nats-Msg-Id`): a second publication
of the same id within the stream's duplicate window is acknowledged as a duplicate and stored
once, which makes a publish safe to repeat when no acknowledgement came.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client

from gsch.eventstore.appends import MSG_ID
from gsch.eventstore.subjects import INTAKE_SUBJECT

PUBLISH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class IntakeAck:
    seq: int  # the request's sequence in the intake stream
    duplicate: bool  # the id was published before (within the duplicate window)


def intake_headers(request_id: str | None) -> dict[str, str] | None:
    return {MSG_ID: request_id} if request_id else None


async def publish_intake(nc: Client, body: bytes, request_id: str | None) -> IntakeAck:
    ack = await nc.jetstream().publish(
        INTAKE_SUBJECT, body, headers=intake_headers(request_id), timeout=PUBLISH_TIMEOUT
    )
    return IntakeAck(seq=int(ack.seq), duplicate=bool(ack.duplicate))
