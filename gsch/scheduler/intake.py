"""A message from `gsch.requests`: decode it, then reject it with its reason, or accept it and
make its first attempt in the same append. A message delivered again (its holder died) or a
request id published twice continues from what the log already holds, never starts over; the
same id with another body is refused as a conflict (`RequestIdConflict`), the original
request untouched; a cancel recorded before the request arrived cancels it on arrival, unless
it has expired.
"""

from __future__ import annotations

import logging
import time

from gsch.eventstore.consumers import WorkItem
from gsch.eventstore.store import ConflictError, EventStore, EventTooLargeError, Write
from gsch.eventstore.subjects import ConflictKey
from gsch.metrics import DUPLICATE_SUBMISSIONS, REQUESTS_REJECTED
from gsch.model.admission.secrets import redacted_excerpt
from gsch.model.decisions import (
    accept,
    cancel_awaits,
    cancel_on_arrival,
    id_conflict,
    is_conflict,
    is_duplicate,
    reject,
)
from gsch.model.digest import body_digest
from gsch.model.ids import intake_request_id
from gsch.model.intake import IntakeRules, Rejection
from gsch.model.request import QueueLevel, Request
from gsch.model.retry import RetryPolicy
from gsch.model.states import RequestState, State
from gsch.scheduler.attempts import Attempts
from gsch.scheduler.rules import admit

log = logging.getLogger(__name__)

EXCERPT_BYTES = 512  # of a rejected message, kept in its event for the person who sent it
# Appends retried while a request's history keeps moving under the intake (cancels landing).
_MAX_INTAKE_CONFLICTS = 20
# The `field` label of the rejection counter takes only these values (a sender's unknown
# field name must not become a time series).
_COUNTED_FIELDS = frozenset({
    "body", "request_id", "policy", "priority", "mode", "select_clusters", "select_cluster",
    "select_node", "source", "user_name", "workspace_name", "project_name", "namespace",
    "fast", "workload", "scope", "option", "env", "spec", "metadata",
})  # fmt: skip


def counted_field(field: str) -> str:
    """The rejection counter's label for a rejected field: its top-level name, if known."""
    top = field.split(".")[0].split("[")[0]
    return top if top in _COUNTED_FIELDS else "other"


class Intake:
    def __init__(
        self,
        store: EventStore,
        attempts: Attempts,
        rules: IntakeRules,
        retry: RetryPolicy,
        cancel_before_arrival: float = 300.0,
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.rules = rules
        self.retry = retry
        self.cancel_before_arrival = cancel_before_arrival

    def decode(self, item: WorkItem) -> tuple[Request | Rejection, QueueLevel]:
        """The request (or why not), and the level it waits at for its first attempt."""
        fallback_id = intake_request_id(item.msg_id, item.seq, item.published_ns)
        decoded = admit(item.data, self.rules, fallback_id)
        if isinstance(decoded, Rejection):
            return decoded, QueueLevel.BASE
        return decoded, self.retry.level(decoded, 0)

    async def take(self, item: WorkItem, decoded: Request | Rejection) -> None:
        digest = body_digest(item.data)
        if isinstance(decoded, Rejection):
            await self._reject(decoded, item, digest)
        else:
            try:
                await self._accept(decoded, item, digest)
            except EventTooLargeError as exc:
                # Refused before anything was sent: record why instead of retrying for ever.
                problem = f"the request is too large to record in the event log ({exc})"
                rejection = Rejection(decoded.request_id, "body", problem, decoded.form)
                await self._reject(rejection, item, digest)
        await item.ack()

    async def _reject(self, rejection: Rejection, item: WorkItem, digest: str) -> None:
        excerpt = redacted_excerpt(item.data, EXCERPT_BYTES)
        expect = 0
        for _ in range(_MAX_INTAKE_CONFLICTS):
            change = reject(
                rejection.request_id, rejection.reason, rejection.field, rejection.form,
                item.seq, excerpt, time.time(), digest=digest, expect=expect,
                callback_url=rejection.callback_url,
            )  # fmt: skip
            try:
                await self.store.append_change(change)
            except ConflictError:
                existing = await self.store.load_request(rejection.request_id)
                if existing.state is State.NEW:
                    expect = existing.last_seq  # only a cancel awaits it: a rejection ends it
                    continue
                await self._known_again(existing, item, digest)
                return
            REQUESTS_REJECTED.labels(field=counted_field(rejection.field)).inc()
            log.info(
                "request rejected",
                extra={"request_id": rejection.request_id, "reason": rejection.reason},
            )
            return
        raise ConflictError(f"{rejection.request_id}: its history kept changing")

    async def _accept(self, request: Request, item: WorkItem, digest: str) -> None:
        """First attempt: the acceptance and the attempt's outcome in one atomic append,
        conditional on the request's subject being empty. That condition is the claim (the
        first writer wins), so no separate RequestClaimed is written: nobody could ever observe
        the request between the two. A new request costs one round trip to the log."""
        known = RequestState(request_id=request.request_id)
        if item.deliveries > 1:
            # Redelivered after a lease expired: the log may already hold this request.
            known = await self.store.load_request(request.request_id)
        for _ in range(_MAX_INTAKE_CONFLICTS):
            if known.state is not State.NEW:
                await self._known_again(known, item, digest)
                return
            if await self._first_attempt(request, item, digest, known):
                return
            known = await self.store.load_request(request.request_id)
            if known.state is State.NEW and known.cancel_recorded_at is None:
                raise RuntimeError(f"{request.request_id}: lost a race to an empty history")
        raise ConflictError(f"{request.request_id}: its history kept changing")

    async def _first_attempt(
        self, request: Request, item: WorkItem, digest: str, known: RequestState
    ) -> bool:
        """Accept (and attempt, or cancel at once when a cancel awaits it) on the history
        `known`, which holds no request yet; False when that history moved on meanwhile."""
        now = time.time()
        level = self.retry.level(request, 0)
        base = accept(request, item.seq, level, now, digest=digest, expect=known.last_seq)
        if cancel_awaits(known, item.published_ns / 1e9, self.cancel_before_arrival):
            try:
                await self.store.append_change(cancel_on_arrival(base, known, now))
            except ConflictError:
                return False
            log.info("request cancelled on arrival", extra={"request_id": request.request_id})
            return True
        state = RequestState(request_id=request.request_id, last_seq=known.last_seq)
        return await self.attempts.attempt(state, request, base, accepted_at=now)

    async def _known_again(self, known: RequestState, item: WorkItem, digest: str) -> None:
        """The request's subject held a request already: this very message delivered before
        (finish what the previous holder left), a second publication of a known request id
        (the same body: a duplicate; another body: a conflict), or an old-style cancel."""
        if is_duplicate(known, item.seq):
            if is_conflict(known, digest):
                await self._conflict(known, item, digest)
                return
            DUPLICATE_SUBMISSIONS.inc()
            log.info("duplicate submission ignored", extra={"request_id": known.request_id})
            return
        if known.state in (State.QUEUED, State.SCHEDULING) and (
            known.queued_seq == known.accepted_seq  # else requeued since: the retry queue owns it
        ):
            await self.attempts.schedule(known)

    async def _conflict(self, known: RequestState, item: WorkItem, digest: str) -> None:
        excerpt = redacted_excerpt(item.data, EXCERPT_BYTES)
        event = id_conflict(known, item.seq, digest, excerpt, time.time())
        # One message id per refused message: a redelivery records it once.
        msg_id = f"{known.request_id}:conflict:{item.seq}"
        await self.store.append(Write(ConflictKey(known.request_id), (event,), msg_ids=(msg_id,)))
        REQUESTS_REJECTED.labels(field="request_id").inc()
        log.warning(
            "request id reused with another body",
            extra={"request_id": known.request_id, "intake_seq": item.seq},
        )
