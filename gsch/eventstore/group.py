"""Group commit: concurrent atomic appends of one process travel as one atomic batch.

Each member (one decision: e.g. a placement and its reservations) keeps its own expectations.
Members whose scopes overlap never share a group, since inside a batch an earlier message on
a scope would invalidate a later expectation on it. When a group is refused for a wrong last
sequence, nothing of it was stored: each member is checked against the log, losers get a
ConflictError, the rest go out again. After a timeout the group may or may not have landed:
each member is read back by its message ids.

When a group goes out is paced by its round trips (`pacing.py`: batches are spaced while they
queue at the server), and how large it may be follows the share of stale members
(`sizing.py`). With hints (`hints.py`), competing writers announce their batches to each
other, and a member that another's batch in flight would make stale waits until it is settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from gsch.eventstore.appends import (
    BATCH_DUPLICATE_MSG_ID,
    BATCH_TOO_MANY_INFLIGHT,
    TRANSIENT,
    WRONG_LAST,
    Append,
    ConflictError,
    KnownStaleError,
    Rejected,
    Revalidator,
    StoreError,
    StoreUnavailableError,
)
from gsch.eventstore.hints import MAX_HOLD, CommitHints, hold, publish_announced
from gsch.eventstore.members import (
    Member,
    Refusal,
    conflict_scope,
    expects_other,
    fail,
    rebase,
    resolve,
    scope_of,
)
from gsch.eventstore.pacing import BatchPacer
from gsch.eventstore.sizing import MAX_GROUP_MESSAGES, GroupSize
from gsch.metrics import (
    COMMIT_CONFLICTS,
    GROUP_COMMIT_BATCHES,
    GROUP_COMMIT_DECISIONS,
    GROUP_COMMIT_GAP,
    GROUP_COMMIT_ROUND_TRIP,
    GROUP_COMMIT_WAIT,
)


class BatchLog(Protocol):
    """What the committer needs of the log: send one atomic batch, and tell whether a
    member's messages landed (the event store provides both; the committer never calls
    anything else, so persistence has no cycle)."""

    @property
    def give_up_after(self) -> float: ...

    async def publish_batch(self, items: Sequence[Append]) -> list[int]: ...

    async def member_status(self, items: Sequence[Append]) -> list[int] | None: ...

    async def subject_at(self, seq: int) -> str | None: ...


log = logging.getLogger(__name__)

_WRONG_LAST = re.compile(r"wrong last sequence: (\d+)")


class GroupCommitter:
    def __init__(
        self,
        store: BatchLog,
        max_groups_in_flight: int,
        pacer: BatchPacer | None = None,
        hints: CommitHints | None = None,
    ) -> None:
        self._store = store
        self.hints: CommitHints | None = None
        self._holding = 0  # members held back for others' batches at the last take
        if hints is not None:
            self.use_hints(hints)
        self._queue: deque[Member] = deque()
        self._busy_scopes: set[str] = set()
        self._slots = asyncio.Semaphore(max_groups_in_flight)
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.size = GroupSize()  # how many messages the next group may carry
        self._in_flight = 0
        # Spaces this process's batches while they queue at the server (see `pacing.py`).
        self.pacer = pacer or BatchPacer()
        self._timer: asyncio.TimerHandle | None = None

    def use_hints(self, hints: CommitHints) -> None:
        """Announce batches to the other writers and hold members theirs would make stale."""
        self.hints = hints
        hints.listen(self._others_settled)

    async def submit(
        self, items: list[Append], revalidator: Revalidator | None = None
    ) -> list[int]:
        if len(items) > MAX_GROUP_MESSAGES:
            raise StoreError(f"{len(items)} events in one decision; at most {MAX_GROUP_MESSAGES}")
        loop = asyncio.get_running_loop()
        member = Member(
            items=items,
            future=loop.create_future(),
            scopes=frozenset(scope_of(item) for item in items),
            deadline=time.monotonic() + self._store.give_up_after,
            revalidator=revalidator,
        )
        self._queue.append(member)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return await member.future

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        tasks = [t for t in (self._pump, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for member in self._queue:
            if not member.future.done():
                member.future.set_exception(StoreUnavailableError("event store closed"))

    def _full_group_waiting(self) -> bool:
        """Whether the waiting members fill a group: only then does a second group go out
        while one is in flight (the first waits for nobody; later ones are never small)."""
        messages = 0
        for member in self._queue:
            messages += member.size
            if messages >= self.size.limit:
                return True
        return False

    def _take_group(self) -> list[Member]:
        """The next group, in arrival order. Scanning stops once the group is full: members
        after it wait untouched, so a long queue costs each member one re-validation when
        it is taken, not one per group taken before it."""
        group: list[Member] = []
        messages = holding = 0
        taken: set[str] = set()
        kept: deque[Member] = deque()
        while self._queue:
            member = self._queue[0]
            if member.future.done():
                self._queue.popleft()
                continue
            if messages > 0 and messages + member.size > self.size.limit:
                break
            self._queue.popleft()
            if not member.scopes.isdisjoint(self._busy_scopes) or not (
                member.scopes.isdisjoint(taken)
            ):
                kept.append(member)
                continue
            if self._held(member):
                holding += 1
                kept.append(member)
                continue
            if not rebase(member):
                # Already known to be stale: sending it would only get the group refused.
                fail(member, KnownStaleError("an expected scope moved on before sending"))
                continue
            member.taken += 1
            group.append(member)
            taken |= member.scopes
            messages += member.size
        kept.extend(self._queue)
        self._queue = kept
        self._busy_scopes |= taken
        self._holding = holding
        return group

    def _held(self, member: Member) -> bool:
        """Whether another writer's batch in flight holds `member` back; a first hold
        wakes the committer when it ends, however the hints fare."""
        if self.hints is None:
            return False
        first = member.held_since is None
        if not hold(member, self.hints, time.monotonic()):
            return False
        if first:
            asyncio.get_running_loop().call_later(MAX_HOLD, self._wake.set)
        return True

    def _others_settled(self) -> None:
        """Another writer's batch stopped counting as in flight: held members may go."""
        if self._holding:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                full = self._full_group_waiting()
                if self._in_flight and not full:
                    break  # a partial group waits for the one in flight: groups stay large
                held = 0.0 if full else self.pacer.delay()
                if held > 0:
                    self._wake_after(held)  # batches queue at the server: let this one grow
                    break
                await self._slots.acquire()
                group = self._take_group()
                if not group:
                    self._slots.release()
                    break  # everything waiting clashes with a group in flight
                self.pacer.sent()
                self._in_flight += 1
                task = asyncio.create_task(self._send(group))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    def _wake_after(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)

    def _answered(self, sent: float) -> None:
        """The server answered a batch sent at `sent`: its round trip paces the next."""
        round_trip = self.pacer.now() - sent
        GROUP_COMMIT_ROUND_TRIP.observe(round_trip)
        self.pacer.answered(round_trip)
        GROUP_COMMIT_GAP.set(self.pacer.gap)

    async def _send(self, group: list[Member]) -> None:
        """Send one group and settle every member, whatever happens: an error settles the
        members it concerns (as a failed append each) and never ends the committer."""
        held = [(member, member.taken) for member in group]
        try:
            try:
                refused = await self._attempt(group)
            finally:
                # The server is free for the next group even while this one is being settled.
                self._in_flight -= 1
                self._slots.release()
                self._wake.set()
            if refused is not None and not await self._settle_stale(group, refused):
                await self._settle(group, refused.retry_reason, refused.unknown)
        except asyncio.CancelledError:
            for member in group:
                fail(member, StoreUnavailableError("event store closed"))
            raise
        except Exception as exc:  # a bug or an unforeseen refusal: fail the group, not the loop
            log.exception("group commit failed", extra={"members": len(group)})
            await self._settle_after_error(group, exc)
        finally:
            for member, taken in held:
                if member.taken == taken:
                    self._busy_scopes -= member.scopes
            self._wake.set()

    async def _settle_after_error(self, group: list[Member], exc: Exception) -> None:
        """After an unexpected error the group may have landed (the error may have come after
        the commit): members found in the log are resolved, the others fail."""
        for member in group:
            if member.future.done():
                continue
            try:
                landed = await self._store.member_status(member.items)
            except ConflictError as conflict:
                fail(member, conflict)
                continue
            except Exception:  # unreadable now: the member fails with the original error
                landed = None
            if landed is not None:
                resolve(member, landed)
            else:
                fail(member, StoreError(f"append failed: {exc!r}"[:500]))

    async def _attempt(self, group: list[Member]) -> Refusal | None:
        """Send the group. None when every member is resolved; else what `_settle` needs."""
        items = [item for member in group for item in member.items]
        waited = time.monotonic()
        for member in group:
            if not member.sent:
                member.sent = True
                GROUP_COMMIT_WAIT.observe(waited - member.submitted)
        sent = self.pacer.now()
        GROUP_COMMIT_BATCHES.inc()
        GROUP_COMMIT_DECISIONS.observe(len(group))
        try:
            if self.hints is None:
                sequences = await self._store.publish_batch(items)
            else:
                sequences = await publish_announced(self._store.publish_batch, self.hints, items)
        except TRANSIENT as exc:
            return Refusal(repr(exc), unknown=True)
        except Rejected as exc:
            self._answered(sent)
            if exc.err_code in (*WRONG_LAST, BATCH_DUPLICATE_MSG_ID):
                self.size.answered(len(group), len(items), refused=True)
                found = _WRONG_LAST.search(exc.description)
                return Refusal(None, unknown=False, last_seq=int(found[1]) if found else None)
            if exc.err_code == BATCH_TOO_MANY_INFLIGHT:
                await asyncio.sleep(0.05)
                self._requeue(group, f"server busy: {exc.description}")
                return None
            for member in group:
                fail(member, StoreError(exc.description))
            return None
        self._answered(sent)
        self.size.answered(len(group), len(items), refused=False)
        offset = 0
        for member in group:
            resolve(member, sequences[offset : offset + member.size])
            offset += member.size
        return None

    async def _settle_stale(self, group: list[Member], refused: Refusal) -> bool:
        """A group refused for a wrong last sequence: the server names the sequence the
        stale scope really ends at, so one read of that message finds the stale members.
        They are re-validated on their writer's view once it holds that message (or checked
        against the log); the others are sent again at once. False when that does not apply
        or the message does not point at a member (then every member is checked)."""
        if refused.last_seq is None:
            return False
        with contextlib.suppress(*TRANSIENT):
            subject = await self._store.subject_at(refused.last_seq)
            stale = [m for m in group if subject is not None and expects_other(m, subject)]
            if not stale:
                return False
            # The others go out again before the stale ones are looked at: they need nothing
            # from the writer's view, which may take a while to reach that message.
            self._hand_back(
                [m for m in group if m not in stale], "group refused for another member"
            )
            for member in stale:
                if member.revalidator is not None:
                    await member.revalidator.catch_up(refused.last_seq)
            scope = conflict_scope(subject)
            rechecks = [self._recheck(m, scope) for m in stale]
            survivors = [m for m in await asyncio.gather(*rechecks) if m]
            self._requeue(survivors, "group refused for another member")
            return True
        return False

    async def _recheck(self, member: Member, scope: str) -> Member | None:
        """A stale member after its writer's view caught up: rebased (or failed), or when the
        view had nothing newer, checked against the log. A rebased member lost a race at the
        log (counted here as a conflict of `scope`); a failed one is counted by its writer."""
        before = list(member.items)
        if not rebase(member):
            fail(member, KnownStaleError("an expected scope moved on"))
            return None
        if member.items != before:
            COMMIT_CONFLICTS.labels(scope=scope).inc()
            return member
        return await self._look_up(member)

    async def _look_up(self, member: Member) -> Member | None:
        """Settle a member by what the log holds: landed (resolved), lost (failed), or not
        there with its expectations intact (returned, to be sent again)."""
        try:
            landed = await self._store.member_status(member.items)
        except ConflictError as exc:
            fail(member, exc)
            return None
        except TRANSIENT:
            return member  # cannot tell yet: try again later
        if landed is not None:
            resolve(member, landed)
            return None
        return member

    async def _settle(self, group: list[Member], retry_reason: str | None, unknown: bool) -> None:
        """After a refused or unanswered group: resolve each member.

        A refused group stored nothing. Members whose writer offered its own view (a
        revalidator) have that view brought up to date first (once per writer, at the cost of
        one read) and re-validated, and a member refused for the first time is simply sent
        again. Members refused again, and every member of a group whose outcome is unknown (a
        timeout), are checked against the log one by one."""
        if not unknown:
            writers = {id(m.revalidator): m.revalidator for m in group if m.revalidator}
            for writer in writers.values():
                with contextlib.suppress(*TRANSIENT):
                    await writer.catch_up()

        async def check(member: Member) -> Member | None:
            if not rebase(member):
                fail(member, KnownStaleError("an expected scope moved on"))
                return None
            if not unknown and member.revalidator is not None and member.refusals == 0:
                member.refusals += 1
                return member
            return await self._look_up(member)

        survivors = [m for m in await asyncio.gather(*(check(m) for m in group)) if m is not None]
        if retry_reason is not None:
            await asyncio.sleep(0.1)
        self._requeue(survivors, retry_reason or "group refused for another member")

    def _hand_back(self, members: list[Member], reason: str) -> None:
        """Requeue members of a group still being settled, their scopes free for the next."""
        for member in members:
            member.taken += 1  # no longer the group's: its end leaves these scopes alone
            self._busy_scopes -= member.scopes
        self._requeue(members, reason)

    def _requeue(self, members: list[Member], reason: str) -> None:
        now = time.monotonic()
        for member in members:
            if now > member.deadline:
                fail(member, StoreUnavailableError(f"append not confirmed: {reason}"))
                continue
            self._queue.appendleft(member)
        self._wake.set()
