"""Commit intents on the bus: each worker tells the others what a batch of its group committer
is about to reserve, and once the server answered whether it landed, and counts theirs on its
own snapshot (`intents.py`, which says why a hint can never place twice or overcommit).

Core NATS, fire and forget: nothing waits for an intent, and a lost one costs at most the
refusal it would have spared. Subjects are `gsch.intents.<sender>`, granted to the worker
role alone (`gsch.bus.roles`); the sender is the subject's last token (so a worker skips its
own), a fresh one per process. Messages are JSON:

    {"t": "intent", "group": 7, "reservations": [["req-1", "c1", "c1-n3", 250, 0, 0, 1], ...]}
    {"t": "done", "group": 7, "landed": true}

a reservation being [request, cluster, node, cpu_m, memory, gpu, pods]. What a message may
hold is bounded (bytes, reservations, name lengths, amounts never negative) and what is live
in all (`intents.MAX_LIVE`); anything else is ignored and counted
(`gsch_commit_intents_ignored_total`), never raised.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Annotated

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.appends import Append
from gsch.eventstore.sizing import MAX_GROUP_MESSAGES
from gsch.eventstore.subjects import INTENT_SUBJECTS, token
from gsch.metrics import INTENTS_IGNORED, INTENTS_RECEIVED, INTENTS_SENT
from gsch.model.events import CapacityReserved, Placement
from gsch.model.resources import Resources
from gsch.scheduler.intents import EXPIRY, IntentTable

log = logging.getLogger(__name__)

# The largest intent a sender may send: a group's reservations (at most one per message of
# the batch) with names of the longest allowed, with room to spare.
MAX_INTENT_BYTES = 256 * 1024
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
_Amount = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class Reservation(msgspec.Struct, frozen=True, array_like=True):
    request_id: _Name
    cluster: _Name
    node: _Name
    cpu_m: _Amount
    memory: _Amount
    gpu: _Amount
    pods: _Amount


class Intent(msgspec.Struct, frozen=True, tag="intent", tag_field="t"):
    group: _Amount
    reservations: Annotated[tuple[Reservation, ...], msgspec.Meta(max_length=MAX_GROUP_MESSAGES)]


class Done(msgspec.Struct, frozen=True, tag="done", tag_field="t"):
    group: _Amount
    landed: bool


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Intent | Done)


def reservations_of(items: Sequence[Append]) -> tuple[Reservation, ...]:
    """The conditional reservations of a batch: what another worker's plans must go around."""
    found = []
    for item in items:
        event = item.event
        if isinstance(event, CapacityReserved) and item.expect_seq is not None:
            a = event.amount
            where = (event.request_id, event.cluster, event.node)
            found.append(Reservation(*where, a.cpu_m, a.memory, a.gpu, a.pods))
    return tuple(found)


class CommitIntents:
    """This worker's side of the intents: announces its batches (the group committer's
    `CommitHints`) and keeps the others' in an `IntentTable` on its snapshot."""

    def __init__(
        self, nc: Client, snapshot: ClusterSnapshot, worker: str, expiry: float = EXPIRY
    ) -> None:
        self._nc = nc
        # Unique per process even where processes share a name (tests run several workers
        # in one process): a worker must never take another's intents for its own.
        self.sender = token(f"{worker}-{secrets.token_hex(4)}")
        self.subject = f"{INTENT_SUBJECTS}.{self.sender}"
        self.table = IntentTable(snapshot, expiry)
        self._groups = itertools.count(1)
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(f"{INTENT_SUBJECTS}.*", cb=self._received)
        await self._nc.flush()  # subscribed at the server before the first batch goes out

    async def stop(self) -> None:
        if self._subscription is not None:
            # A connection already gone took the subscription with it.
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        self.table.close()

    # --- this worker's batches (CommitHints) ---------------------------------------------

    async def announce(self, items: Sequence[Append]) -> int | None:
        reservations = reservations_of(items)
        if not reservations:
            return None
        group = next(self._groups)
        await self._send(Intent(group, reservations), "intent")
        return group

    async def answered(self, token: int, landed: bool) -> None:
        await self._send(Done(token, landed), "done")

    def contested(self, items: Sequence[Append]) -> bool:
        for item in items:
            event = item.event
            if (
                item.expect_seq is not None
                and isinstance(event, CapacityReserved)
                and self.table.contested(event.cluster, event.node)
            ):
                return True
        return False

    def listen(self, settled: Callable[[], None]) -> None:
        self.table.settle_listeners.append(settled)

    async def _send(self, message: Intent | Done, kind: str) -> None:
        """Publish without waiting: a hint that cannot go out now is simply not given."""
        try:
            await self._nc.publish(self.subject, _encoder.encode(message))
        except nats.errors.Error as exc:
            log.debug("commit intent not sent", extra={"error": repr(exc)})
            return
        INTENTS_SENT.labels(kind=kind).inc()

    # --- the other workers' batches ------------------------------------------------------

    async def _received(self, msg: Msg) -> None:
        sender = msg.subject.rpartition(".")[2]
        if sender == self.sender:
            return
        if len(msg.data) > MAX_INTENT_BYTES:
            INTENTS_IGNORED.labels(reason="too_large").inc()
            return
        try:
            message = _decoder.decode(msg.data)
        except msgspec.DecodeError:  # validation errors too: one bad message, never a crash
            INTENTS_IGNORED.labels(reason="malformed").inc()
            return
        if isinstance(message, Done):
            INTENTS_RECEIVED.labels(kind="done").inc()
            self.table.answered((sender, message.group), message.landed)
            return
        INTENTS_RECEIVED.labels(kind="intent").inc()
        self.table.announced(
            (sender, message.group),
            [
                (
                    r.request_id,
                    Placement(r.cluster, r.node, Resources(r.cpu_m, r.memory, r.gpu, r.pods)),
                )
                for r in message.reservations
            ],
        )
