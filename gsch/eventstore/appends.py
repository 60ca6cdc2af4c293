"""What an append is, and how one can fail: shared by the store and the group committer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import nats.errors
import nats.js.errors

from gsch.model.events import Event

MSG_ID = "Nats-Msg-Id"
EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SCOPE = "Nats-Expected-Last-Subject-Sequence-Subject"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQ = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"

WRONG_LAST_SEQUENCE = 10071
BATCH_DUPLICATE_MSG_ID = 10201
BATCH_TOO_MANY_INFLIGHT = 10210

# Failures after which the outcome of an append is unknown and must be read back.
TRANSIENT = (
    asyncio.TimeoutError,  # covers nats.errors.TimeoutError and the bare one fetch raises
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)


class ConflictError(Exception):
    """Someone else appended within the scope since the writer read it: re-read and re-decide."""


class KnownStaleError(ConflictError):
    """Refused before sending: the writer's own view already shows the expectation is stale."""


class StoreUnavailableError(Exception):
    """JetStream did not answer within the retry deadline; nothing is known to be stored."""


class StoreError(Exception):
    """JetStream refused an append for a reason other than a conflict."""


@dataclass(frozen=True, slots=True)
class Append:
    """One event to append. `expect_seq` makes it conditional on `expect_scope`."""

    subject: str
    event: Event
    msg_id: str
    expect_seq: int | None = None
    expect_scope: str | None = None


class Rejected(Exception):
    """JetStream refused a publish with an API error code."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"{err_code}: {description}")
        self.err_code = err_code
        self.description = description
