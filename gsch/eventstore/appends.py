"""What an append is, and how one can fail: shared by the store and the group committer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import nats.errors
import nats.js.errors

from gsch.eventstore.ids import new_msg_id
from gsch.eventstore.subjects import ConflictKey, EntityKey, NodeKey, RequestKey
from gsch.eventstore.wire import header_line
from gsch.model.decisions import Change
from gsch.model.events import CapacityReserved, Event, encode_event

MSG_ID = "Nats-Msg-Id"
EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SCOPE = "Nats-Expected-Last-Subject-Sequence-Subject"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQ = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"

WRONG_LAST_SEQUENCE = 10071  # "wrong last sequence: N", N where the scope really ends
# The same refusal without the sequence: what a replicated (R3) stream answers to an atomic
# batch whose expectation failed.
WRONG_LAST_SEQUENCE_UNNUMBERED = 10164
WRONG_LAST = (WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_UNNUMBERED)
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


class EventTooLargeError(StoreError):
    """An event is larger than one message may be: refused before anything is sent (the
    server would refuse it, and nats-py raises before sending), so it fails its own append
    and nothing else."""


@dataclass(frozen=True, slots=True)
class Write:
    """Events about one entity, appended in order, as part of one atomic append.

    With `expect`, the first event is conditional on the entity's history ending at that
    stream sequence (0: the entity has no history yet): the write lands only if nobody else
    wrote about the entity since the writer read it. The events after the first follow it in
    the same atomic batch. Without `expect` the events are stated, not decided (facts from an
    authority, or capacity released by whoever holds it)."""

    key: EntityKey
    events: tuple[Event, ...]
    expect: int | None = None
    # The writer's name for itself, which starts each message id, so that a writer can
    # recognise its own events when it reads them back (default: the entity's name).
    origin: str | None = None
    # Message ids to use instead of fresh ones (one per event): only for a writer that must
    # send the very same message again across processes, and for tests of de-duplication.
    msg_ids: tuple[str, ...] = ()

    def appends(self) -> list[Append]:
        """The messages this write sends: subjects, message ids and expectations."""
        origin = self.origin or _name_of(self.key)
        if self.msg_ids and len(self.msg_ids) != len(self.events):
            raise ValueError("one message id per event")
        return [
            Append(
                subject=self.key.subject(type(event).__name__),
                event=event,
                msg_id=self.msg_ids[index] if self.msg_ids else new_msg_id(origin, event),
                expect_seq=self.expect if index == 0 else None,
                expect_scope=self.key.history if index == 0 and self.expect is not None else None,
            )
            for index, event in enumerate(self.events)
        ]


def writes_of(
    change: Change, node_seqs: Mapping[tuple[str, str], int] | None = None
) -> list[Write]:
    """The writes of one decision: its request events conditional on the request's history,
    each reservation conditional on its node's history as the planner saw it (`node_seqs`),
    releases unconditional (only the holder releases)."""
    writes = [Write(RequestKey(change.request_id), change.events, expect=change.expect)]
    for event in change.capacity:
        where = (event.cluster, event.node)
        expect = None
        if isinstance(event, CapacityReserved):
            if node_seqs is None or where not in node_seqs:
                raise ValueError(f"a reservation on {where} needs the node's sequence")
            expect = node_seqs[where]
        writes.append(Write(NodeKey(*where), (event,), expect=expect, origin=change.request_id))
    return writes


def _name_of(key: EntityKey) -> str:
    return key.request_id if isinstance(key, RequestKey | ConflictKey) else key.subject("")


class Revalidator(Protocol):
    """A writer's own view of the log, consulted by the group committer just before a write
    goes out and after a group was refused: it is passed in by the writer, so persistence
    never has to know who the writers are."""

    async def catch_up(self, seq: int | None = None) -> None:
        """Bring the view up to stream sequence `seq`, or to the log as it is now."""

    def rebase(self, item: Append) -> Append | None:
        """The message as it should go out on what the view shows now (possibly conditional
        on a newer sequence it has re-validated), or None when it is known to lose."""


@dataclass(frozen=True, slots=True)
class Append:
    """One message of an append, as it goes on the wire. `expect_seq` makes it conditional
    on `expect_scope`. Built from a `Write`; only the event store and its writers' revalidators
    see it."""

    subject: str
    event: Event
    msg_id: str
    expect_seq: int | None = None
    expect_scope: str | None = None
    # The event as it goes on the wire, encoded once: its size is checked before sending.
    data: bytes = field(default=b"", compare=False, repr=False)
    # Its header lines (message id, expectation), written once however often it is sent;
    # written again for a copy with another expectation (`replace`).
    header_lines: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.data:
            object.__setattr__(self, "data", encode_event(self.event))
        lines = header_line(MSG_ID, self.msg_id)
        if self.expect_seq is not None:
            lines += header_line(EXPECTED_SEQ, str(self.expect_seq))
            if self.expect_scope is not None:
                lines += header_line(EXPECTED_SCOPE, self.expect_scope)
        object.__setattr__(self, "header_lines", lines)


class Rejected(Exception):
    """JetStream refused a publish with an API error code."""

    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"{err_code}: {description}")
        self.err_code = err_code
        self.description = description
