"""A message from `gsch.requests`: decode it, then reject it with its reason, or accept it and
make its first attempt in the same append. A message delivered again (its holder died) or a
request id published twice continues from what the log already holds, never starts over.
"""

from __future__ import annotations

import logging
import time

from gsch.eventstore.consumers import WorkItem
from gsch.eventstore.store import ConflictError, EventStore
from gsch.metrics import DUPLICATE_SUBMISSIONS, REQUESTS_REJECTED
from gsch.model.decisions import accept, is_duplicate, reject
from gsch.model.ids import intake_request_id
from gsch.model.intake import IntakeRules, Rejection
from gsch.model.request import QueueLevel, Request
from gsch.model.retry import RetryPolicy
from gsch.model.states import RequestState, State
from gsch.scheduler.attempts import Attempts
from gsch.scheduler.rules import admit

log = logging.getLogger(__name__)

EXCERPT_BYTES = 512  # of a rejected message, kept in its event for the person who sent it


class Intake:
    def __init__(
        self, store: EventStore, attempts: Attempts, rules: IntakeRules, retry: RetryPolicy
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.rules = rules
        self.retry = retry

    def decode(self, item: WorkItem) -> tuple[Request | Rejection, QueueLevel]:
        """The request (or why not), and the level it waits at for its first attempt."""
        fallback_id = intake_request_id(item.msg_id, item.seq, item.published_ns)
        decoded = admit(item.data, self.rules, fallback_id)
        if isinstance(decoded, Rejection):
            return decoded, QueueLevel.BASE
        return decoded, self.retry.level(decoded, 0)

    async def take(self, item: WorkItem, decoded: Request | Rejection) -> None:
        if isinstance(decoded, Rejection):
            await self._reject(decoded, item)
        else:
            await self._accept(decoded, item)
        await item.ack()

    async def _reject(self, rejection: Rejection, item: WorkItem) -> None:
        change = reject(
            rejection.request_id, rejection.reason, rejection.field, rejection.form, item.seq,
            item.data[:EXCERPT_BYTES].decode("utf-8", "replace"), time.time(),
        )  # fmt: skip
        try:
            await self.store.append_change(change)
        except ConflictError:
            existing = await self.store.load_request(rejection.request_id)
            if is_duplicate(existing, item.seq):
                DUPLICATE_SUBMISSIONS.inc()
            return
        REQUESTS_REJECTED.labels(field=rejection.field.split(".")[0].split("[")[0]).inc()
        log.info(
            "request rejected",
            extra={"request_id": rejection.request_id, "reason": rejection.reason},
        )

    async def _accept(self, request: Request, item: WorkItem) -> None:
        """First attempt: the acceptance and the attempt's outcome in one atomic append,
        conditional on the request's subject being empty. That condition is the claim (the
        first writer wins), so no separate RequestClaimed is written: nobody could ever observe
        the request between the two. A new request costs one round trip to the log."""
        if item.deliveries > 1:
            # Redelivered after a lease expired: the log may already hold this request.
            known = await self.store.load_request(request.request_id)
            if known.state is not State.NEW:
                await self._continue_known(known, item)
                return
        now = time.time()
        base = accept(request, item.seq, self.retry.level(request, 0), now)
        state = RequestState(request_id=request.request_id)
        if await self.attempts.attempt(state, request, base, accepted_at=now):
            return
        known = await self.store.load_request(request.request_id)
        if known.state is State.NEW:
            raise RuntimeError(f"{request.request_id}: lost a race to an empty history")
        await self._continue_known(known, item)

    async def _continue_known(self, known: RequestState, item: WorkItem) -> None:
        """The request's subject was not empty: this very message delivered before (finish
        what the previous holder left), a second publication of a known request id, or a
        request cancelled before it arrived."""
        if known.state is State.CANCELLED and not known.accepted_seq:
            log.info(
                "request was cancelled before it arrived", extra={"request_id": known.request_id}
            )
            return
        if is_duplicate(known, item.seq):
            DUPLICATE_SUBMISSIONS.inc()
            log.info("duplicate submission ignored", extra={"request_id": known.request_id})
            return
        if known.queued_seq == known.accepted_seq:  # else requeued since: the retry queue owns it
            await self.attempts.schedule(known)
