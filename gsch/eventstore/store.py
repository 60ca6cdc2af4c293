"""Append to and read from the event log, with optimistic concurrency.

The verbs everything else uses: `append` (writes about one or more entities, atomically, each
with its expectation), `load_request` / `last` / `read` (direct gets), `follow` (an ordered
feed of a scope) and `publish_intake` (a request onto the intake queue); the work queues are
consumed through `consumers.py`. Nothing outside this package builds a subject, a header or a
message id, or touches the JetStream context.

An append carries a `Nats-Msg-Id` and, when it is conditional, the stream sequence of the last
event its writer folded within a subject scope. After a timeout or a "wrong last sequence" the
outcome is resolved by reading back: on an R1 stream the server checks the expected sequence
before de-duplicating, so a retry of an append that did land reports a conflict, not a
duplicate (reference/jetstream-notes.md §1.3).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from gsch.eventstore.appends import (
    BATCH_COMMIT,
    BATCH_ID,
    BATCH_SEQ,
    MSG_ID,
    TRANSIENT,
    WRONG_LAST,
    Append,
    ConflictError,
    EventTooLargeError,
    KnownStaleError,
    Rejected,
    Revalidator,
    StoreError,
    StoreUnavailableError,
    Write,
    writes_of,
)
from gsch.eventstore.group import GroupCommitter
from gsch.eventstore.hints import CommitHints
from gsch.eventstore.intake import IntakeAck, publish_intake
from gsch.eventstore.replies import BatchReplies
from gsch.eventstore.streams import Declarations
from gsch.eventstore.subjects import (
    ALL_EVENTS,
    EVENTS_STREAM,
    EntityKey,
    request_history,
    request_key_of,
    stream_of,
)
from gsch.eventstore.wire import header_block, header_line, publish
from gsch.metrics import EVENT_APPENDS
from gsch.model.decisions import Change
from gsch.model.events import AnyEvent, decode_event
from gsch.model.states import RequestState

if TYPE_CHECKING:
    from gsch.eventstore.watch import Follower

__all__ = [
    "MSG_ID",
    "Append",
    "ConflictError",
    "EventStore",
    "EventTooLargeError",
    "KnownStaleError",
    "Revalidator",
    "StoreError",
    "StoreUnavailableError",
    "StoredEvent",
    "Write",
]

log = logging.getLogger(__name__)

# Room left in a message for its headers (message id, expectations with their subject, batch
# id and sequence): an event may take the server's max payload less this.
HEADER_ROOM = 4096
# What a server announces when it says nothing (nats-server's default max_payload, 1 MiB).
DEFAULT_MAX_PAYLOAD = 1024 * 1024
_COMMIT_LINE = header_line(BATCH_COMMIT, "1")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    subject: str
    msg_id: str | None
    event: AnyEvent
    # When the server stored it (seconds since the epoch, the server's clock); 0.0 where the
    # reader did not get it.
    stored_at: float = 0.0

    @property
    def request_id(self) -> str | None:
        """The request this event belongs to, or None for a cluster event."""
        key = request_key_of(self.subject)
        return key.request_id if key is not None else None


class EventStore:
    def __init__(
        self,
        nc: Client,
        *,
        stream: str = EVENTS_STREAM,
        declarations: Declarations | None = None,
        manages_streams: bool = True,
        request_timeout: float = 5.0,
        give_up_after: float = 120.0,
        max_inflight_batches: int = 1,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=request_timeout)
        self.stream = stream
        self._timeout = request_timeout
        self._give_up_after = give_up_after
        # The server allows 50 atomic batches in flight per stream (ADR-50) but handles them
        # one after another, each at a fixed cost: on a file stream it stages every batch in
        # a directory of its own (mkdir, files, fsync, unlink), some 4 ms here however small.
        # Batches in flight together only queue there, and with competing workers they
        # lengthen the window in which two race for a node: one group in flight per process
        # keeps groups large and conflicts rare. With more allowed, a further group overlaps
        # the one in flight only when a full group waits (see `group.py`).
        self._max_inflight_batches = max_inflight_batches
        self._grouper: GroupCommitter | None = None
        self._hints: CommitHints | None = None
        self._replies: BatchReplies | None = None
        self._tokens = itertools.count(1)  # of single appends' answers on that inbox
        self._counters: dict[type, Any] = {}
        # The streams and consumers this process declared at start: re-applied when one of
        # them is found deleted under a running consumer. They own the lease too.
        self.declarations = declarations
        # Whether this process may declare consumers (admin, or a server without
        # authentication); streams are never re-created under a running process.
        self.manages_streams = manages_streams

    @property
    def js(self) -> JetStreamContext:
        return self._js

    @property
    def nc(self) -> Client:
        return self._nc

    @property
    def request_timeout(self) -> float:
        return self._timeout

    @property
    def lease_seconds(self) -> float:
        """How long a work-queue message stays with its holder without a renewal."""
        return self.declarations.lease_seconds if self.declarations else Declarations.lease_seconds

    @property
    def max_event_bytes(self) -> int:
        """The largest encoded event one message can carry on this connection's server."""
        announced = getattr(self._nc, "max_payload", 0) or DEFAULT_MAX_PAYLOAD
        return int(announced) - HEADER_ROOM

    @property
    def give_up_after(self) -> float:
        """Seconds an append keeps retrying before StoreUnavailableError."""
        return self._give_up_after

    # --- writing -------------------------------------------------------------------------

    async def append(self, *writes: Write, revalidator: Revalidator | None = None) -> list[int]:
        """Append the writes atomically (all or none) and return the stream sequence of every
        event, in order. Raises ConflictError when an expectation no longer holds.

        Several events go out as an ADR-50 atomic batch. Concurrent batches of this process
        are grouped into one atomic batch (see `group.py`): on an R1 file stream each batch
        costs the server a staging store on disk, so one batch per decision would cap the
        scheduler at about a hundred decisions per second here. `revalidator` is the writer's
        own view, consulted before a grouped batch goes out and after one was refused."""
        items = [item for write in writes for item in write.appends()]
        if not items:
            raise ValueError("nothing to append")
        self.check_sizes(items)
        if len(items) == 1:
            sequences = [await self._append_single(items[0])]
        else:
            if self._grouper is None:
                self._grouper = GroupCommitter(self, self._max_inflight_batches, hints=self._hints)
            sequences = await self._grouper.submit(items, revalidator)
        for item in items:
            self._appended(type(item.event)).inc()
        return sequences

    def announce_commits(self, hints: CommitHints) -> None:
        """Exchange hints about batches in flight with competing writers (see `hints.py`)."""
        self._hints = hints
        if self._grouper is not None:
            self._grouper.use_hints(hints)

    def check_sizes(self, items: Sequence[Append]) -> None:
        """Refuse, before sending, an append with an event no message could carry: it fails
        alone, instead of the server (or the client library) failing a whole group."""
        limit = self.max_event_bytes
        for item in items:
            if len(item.data) > limit:
                kind = type(item.event).__name__
                raise EventTooLargeError(
                    f"{kind} on {item.subject[:200]} is {len(item.data)} bytes encoded, "
                    f"over the {limit} bytes one message can carry"
                )

    def _appended(self, kind: type) -> Any:
        """The append counter of one event type (label lookups cost a lock each: keep them)."""
        counter = self._counters.get(kind)
        if counter is None:
            counter = self._counters[kind] = EVENT_APPENDS.labels(type=kind.__name__)
        return counter

    async def append_change(
        self,
        change: Change,
        node_seqs: Mapping[tuple[str, str], int] | None = None,
        revalidator: Revalidator | None = None,
    ) -> list[int]:
        """Append one decision (see `writes_of`); ConflictError when it lost a race."""
        return await self.append(*writes_of(change, node_seqs), revalidator=revalidator)

    async def _append_single(self, item: Append) -> int:
        deadline = time.monotonic() + self._give_up_after
        delay = 0.05
        while True:
            try:
                return await self._publish_one(item)
            except TRANSIENT as exc:
                status = await self.member_status([item])
                if isinstance(status, list):
                    return status[0]
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(f"append of {item.subject}: {exc!r}") from exc
                log.warning("append retry", extra={"subject": item.subject, "error": repr(exc)})
            except Rejected as exc:
                if exc.err_code not in WRONG_LAST:
                    raise StoreError(f"{item.subject}: {exc.description}") from exc
                status = await self.member_status([item])
                if isinstance(status, list):
                    return status[0]  # our own earlier attempt had landed
                raise ConflictError(f"{item.subject}: {exc.description}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        if self._grouper is not None:
            await self._grouper.close()
        if self._replies is not None:
            await self._replies.close()

    async def _publish_one(self, item: Append) -> int:
        """Send one message and return its sequence. Its answer comes on the same inbox as
        batches' answers: cheaper than nats-py's `request`, which sets up a timer task and a
        fresh token for each."""
        replies = await self._batch_replies()
        token = f"one-{next(self._tokens)}"
        answer = replies.expect(token)
        try:
            block = header_block(item.header_lines)
            await publish(self._nc, item.subject, item.data, replies.subject(token), block)
            async with asyncio.timeout(self._timeout):
                return _ack_seq(await answer)
        finally:
            replies.forget(token)

    async def publish_batch(self, items: Sequence[Append]) -> list[int]:
        """Send one atomic batch and return its sequences.

        The server answers the first message (empty, or an error that ends the batch) and
        the commit. Both answers are awaited only after the whole batch is on its way: in a
        busy process every await of an answer costs a turn of the event loop, and waiting
        for the first one before sending the rest doubled a group's round trip."""
        replies = await self._batch_replies()
        batch_id = uuid.uuid4().hex
        last = len(items)
        answers = {index: replies.expect(f"{batch_id}-{index}") for index in {1, last}}
        try:
            batch_line = header_line(BATCH_ID, batch_id)
            for index, item in enumerate(items, start=1):
                block = header_block(
                    item.header_lines,
                    batch_line,
                    header_line(BATCH_SEQ, str(index)),
                    _COMMIT_LINE if index == last else b"",
                )
                reply = replies.subject(f"{batch_id}-{index}") if index in answers else ""
                await publish(self._nc, item.subject, item.data, reply, block)
            async with asyncio.timeout(self._timeout):
                first = await answers[1]
                if first and last > 1:
                    _ack_seq(first)  # refused at its first message: that is the reason
                final = _ack_seq(await answers[last])
        finally:
            for index in answers:
                replies.forget(f"{batch_id}-{index}")
        return list(range(final - last + 1, final + 1))

    async def _batch_replies(self) -> BatchReplies:
        if self._replies is None:
            self._replies = BatchReplies(self._nc)
            await self._replies.open()
        return self._replies

    def count_append(self, kind: type) -> None:
        """Count an event appended outside `append` (a bulk load)."""
        self._appended(kind).inc()

    async def member_status(self, items: Sequence[Append]) -> list[int] | None:
        """Whether `items` (appended together, all or none) are in the log.

        Returns their sequences if they are; None if they are not and every expectation
        still holds (safe to send again); raises ConflictError if another writer appended
        within an expected scope since."""
        sequences: list[int | None] = []
        for item in items:
            if item.expect_seq is not None:
                # Exact: the first event in the scope after the expected one is either ours
                # or the one that beat us.
                scope = item.expect_scope or item.subject
                after = await self.first_after(scope, item.expect_seq)
                if after is None:
                    sequences.append(None)
                elif after.msg_id == item.msg_id:
                    sequences.append(after.seq)
                else:
                    raise ConflictError(f"{scope}: another writer appended seq {after.seq}")
            else:
                last = await self.last(item.subject)
                found = last is not None and last.msg_id == item.msg_id
                sequences.append(last.seq if found and last is not None else None)
        if all(seq is not None for seq in sequences):
            return [seq for seq in sequences if seq is not None]
        return None

    # --- reading -------------------------------------------------------------------------

    async def last(self, scope: str | EntityKey) -> StoredEvent | None:
        """The last event on a subject, a wildcard scope or an entity's history, or None."""
        if not isinstance(scope, str):
            scope = scope.history
        try:
            raw = await self._js.get_last_msg(stream_of(scope), scope, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return _stored(raw)

    async def subject_at(self, seq: int) -> str | None:
        """The subject of the message at stream sequence `seq` (None: there is none)."""
        try:
            raw = await self._js.get_msg(self.stream, seq=seq, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return str(raw.subject)

    async def first_after(self, scope: str, seq: int) -> StoredEvent | None:
        try:
            raw = await self._js.get_msg(
                stream_of(scope), seq=seq + 1, subject=scope, direct=True, next=True
            )
        except nats.js.errors.NotFoundError:
            return None
        return _stored(raw)

    async def read(self, scope: str, after: int = 0) -> list[StoredEvent]:
        """Every event in a scope after stream sequence `after`, in order (few events only)."""
        events: list[StoredEvent] = []
        seq = after
        while True:
            found = await self.first_after(scope, seq)
            if found is None:
                return events
            events.append(found)
            seq = found.seq

    async def load_request(self, request_id: str) -> RequestState:
        state = RequestState(request_id=request_id)
        for stored in await self.read(request_history(request_id)):
            state.apply(stored.event, stored.seq)
        return state

    async def last_seq(self) -> int:
        """The last sequence the stream assigned (the event there may have been removed by
        compaction or retention since: compare positions with it, wait with `newest_seq`)."""
        info = await self._js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def newest_seq(self) -> int:
        """The sequence of the newest event in the log (0 when empty): what a reader that
        follows the log waits for, since removed events are never delivered."""
        try:
            raw = await self._js.get_last_msg(self.stream, ALL_EVENTS, direct=True)
        except nats.js.errors.NotFoundError:
            return 0
        return int(raw.seq or 0)  # not decoded: the newest may be an event no gsch wrote

    def follow(
        self,
        scope: str,
        handler: Callable[[StoredEvent], None],
        *,
        on_skip: Callable[[int], None] | None = None,
    ) -> Follower:
        """An ordered feed of the events in `scope`, each once, in order (`start(after_seq)`)."""
        from gsch.eventstore.watch import Follower

        return Follower(self, scope, handler, on_skip=on_skip)

    # --- the intake queue ----------------------------------------------------------------

    async def publish_intake(self, body: bytes, request_id: str | None) -> IntakeAck:
        """Put a request on the intake queue (de-duplicated by its id)."""
        return await publish_intake(self._nc, body, request_id)


def _ack_seq(data: bytes) -> int:
    reply = json.loads(data)
    error = reply.get("error")
    if error:
        code = int(error.get("err_code", 0))
        if error.get("code") == 503:
            raise nats.js.errors.ServiceUnavailableError(description=error.get("description"))
        raise Rejected(code, str(error.get("description", "")))
    return int(reply["seq"])


def _stored(raw: object) -> StoredEvent:
    headers = getattr(raw, "headers", None) or {}
    return StoredEvent(
        seq=int(getattr(raw, "seq")),  # noqa: B009
        subject=str(getattr(raw, "subject")),  # noqa: B009
        msg_id=headers.get(MSG_ID),
        event=decode_event(getattr(raw, "data")),  # noqa: B009
    )
