"""Append to and read from the event log, with optimistic concurrency.

The four verbs everything else uses: `append`, `append_batch` (ADR-50 atomic batch, for one
decision that writes several subjects), `last`/`read` (direct gets), and `load_request`.

An append carries a `Nats-Msg-Id` and, when it is conditional, the stream sequence of the last
event its writer folded within a subject scope. After a timeout or a "wrong last sequence" the
outcome is resolved by reading back: on an R1 stream the server checks the expected sequence
before de-duplicating, so a retry of an append that did land reports a conflict, not a
duplicate (reference/jetstream-notes.md §1.3).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from gsch.eventstore.subjects import EVENTS_STREAM, request_history
from gsch.model.events import AnyEvent, Event, decode_event, encode_event
from gsch.model.states import RequestState

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SCOPE = "Nats-Expected-Last-Subject-Sequence-Subject"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQ = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"

WRONG_LAST_SEQUENCE = 10071
BATCH_DUPLICATE_MSG_ID = 10201

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


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    subject: str
    msg_id: str | None
    event: AnyEvent


class EventStore:
    def __init__(
        self,
        nc: Client,
        *,
        stream: str = EVENTS_STREAM,
        request_timeout: float = 5.0,
        give_up_after: float = 120.0,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=request_timeout)
        self.stream = stream
        self._timeout = request_timeout
        self._give_up_after = give_up_after

    @property
    def js(self) -> JetStreamContext:
        return self._js

    # --- writing -------------------------------------------------------------------------

    async def append(self, item: Append) -> int:
        """Append one event and return its stream sequence."""
        return (await self.append_batch([item]))[-1]

    async def append_batch(self, items: Sequence[Append]) -> list[int]:
        """Append events atomically (all or none) and return their stream sequences."""
        if not items:
            raise ValueError("nothing to append")
        deadline = time.monotonic() + self._give_up_after
        delay = 0.05
        while True:
            try:
                if len(items) == 1:
                    return [await self._publish_one(items[0])]
                return await self._publish_batch(items)
            except TRANSIENT as exc:
                outcome = await self._read_back(items)
                if outcome is not None:
                    return outcome
                if time.monotonic() > deadline:
                    raise StoreUnavailableError(f"append of {items[0].subject}: {exc!r}") from exc
                log.warning("append retry", extra={"subject": items[0].subject, "error": repr(exc)})
            except _Rejected as exc:
                if exc.err_code not in (WRONG_LAST_SEQUENCE, BATCH_DUPLICATE_MSG_ID):
                    raise StoreError(f"{items[0].subject}: {exc.description}") from exc
                outcome = await self._read_back(items)
                if outcome is not None:
                    return outcome
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise ConflictError(f"{items[0].subject}: {exc.description}") from exc
                raise StoreError(f"{items[0].subject}: {exc.description}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _publish_one(self, item: Append) -> int:
        reply = await self._nc.request(
            item.subject, encode_event(item.event), timeout=self._timeout, headers=_headers(item)
        )
        return _ack_seq(reply.data)

    async def _publish_batch(self, items: Sequence[Append]) -> list[int]:
        batch_id = uuid.uuid4().hex
        last = len(items)
        for index, item in enumerate(items, start=1):
            headers = _headers(item)
            headers[BATCH_ID] = batch_id
            headers[BATCH_SEQ] = str(index)
            data = encode_event(item.event)
            if index == last:
                headers[BATCH_COMMIT] = "1"
                reply = await self._nc.request(
                    item.subject, data, timeout=self._timeout, headers=headers
                )
                final = _ack_seq(reply.data)
                return list(range(final - last + 1, final + 1))
            if index == 1:
                # The first message must be a request: the server answers it with an empty
                # body, or with an error that ends the batch early.
                reply = await self._nc.request(
                    item.subject, data, timeout=self._timeout, headers=headers
                )
                if reply.data:
                    _ack_seq(reply.data)
            else:
                await self._nc.publish(item.subject, data, headers=headers)
        raise AssertionError("unreachable")

    async def _read_back(self, items: Sequence[Append]) -> list[int] | None:
        """The sequences of `items` if they are in the log, else None (or ConflictError)."""
        sequences = []
        for item in items:
            found = await self._find(item)
            if found is None:
                return None
            sequences.append(found)
        return sequences

    async def _find(self, item: Append) -> int | None:
        if item.expect_seq is not None:
            # Exact: the first event in the scope after the expected one is either ours or the
            # one that beat us.
            scope = item.expect_scope or item.subject
            after = await self.first_after(scope, item.expect_seq)
            if after is None:
                return None
            if after.msg_id == item.msg_id:
                return after.seq
            raise ConflictError(f"{scope}: another writer appended seq {after.seq}")
        last = await self.last(item.subject)
        if last is not None and last.msg_id == item.msg_id:
            return last.seq
        return None

    # --- reading -------------------------------------------------------------------------

    async def last(self, scope: str) -> StoredEvent | None:
        """The last event on a subject or wildcard scope, or None when there is none."""
        try:
            raw = await self._js.get_last_msg(self.stream, scope, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        return _stored(raw)

    async def first_after(self, scope: str, seq: int) -> StoredEvent | None:
        try:
            raw = await self._js.get_msg(
                self.stream, seq=seq + 1, subject=scope, direct=True, next=True
            )
        except nats.js.errors.NotFoundError:
            return None
        return _stored(raw)

    async def read(self, scope: str, after: int = 0) -> list[StoredEvent]:
        """Every event in a scope after stream sequence `after`, in order (few events only)."""
        events = []
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
        info = await self._js.stream_info(self.stream)
        return int(info.state.last_seq)


class _Rejected(Exception):
    def __init__(self, err_code: int, description: str) -> None:
        super().__init__(f"{err_code}: {description}")
        self.err_code = err_code
        self.description = description


def _headers(item: Append) -> dict[str, str]:
    headers = {MSG_ID: item.msg_id}
    if item.expect_seq is not None:
        headers[EXPECTED_SEQ] = str(item.expect_seq)
        if item.expect_scope is not None:
            headers[EXPECTED_SCOPE] = item.expect_scope
    return headers


def _ack_seq(data: bytes) -> int:
    reply = json.loads(data)
    error = reply.get("error")
    if error:
        code = int(error.get("err_code", 0))
        if error.get("code") == 503:
            raise nats.js.errors.ServiceUnavailableError(description=error.get("description"))
        raise _Rejected(code, str(error.get("description", "")))
    return int(reply["seq"])


def _stored(raw: object) -> StoredEvent:
    headers = getattr(raw, "headers", None) or {}
    return StoredEvent(
        seq=int(getattr(raw, "seq")),  # noqa: B009
        subject=str(getattr(raw, "subject")),  # noqa: B009
        msg_id=headers.get(MSG_ID),
        event=decode_event(getattr(raw, "data")),  # noqa: B009
    )
