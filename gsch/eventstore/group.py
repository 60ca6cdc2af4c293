"""Group commit: concurrent atomic appends of one process travel as one atomic batch.

Each member (one decision: e.g. a placement and its reservations) keeps its own expectations.
Members whose scopes overlap never share a group, since inside a batch an earlier message on
a scope would invalidate a later expectation on it. When a group is refused for a wrong last
sequence, nothing of it was stored: each member is checked against the log, losers get a
ConflictError, the rest go out again. After a timeout the group may or may not have landed:
each member is read back by its message ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gsch.eventstore.appends import (
    BATCH_DUPLICATE_MSG_ID,
    BATCH_TOO_MANY_INFLIGHT,
    TRANSIENT,
    WRONG_LAST_SEQUENCE,
    Append,
    ConflictError,
    KnownStaleError,
    Rejected,
    StoreError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from gsch.eventstore.store import EventStore

log = logging.getLogger(__name__)

MAX_GROUP_MESSAGES = 500  # the server takes up to 1000 per batch


def scope_of(item: Append) -> str:
    """The consistency scope an append touches: its expected scope, or its aggregate's."""
    if item.expect_scope is not None:
        return item.expect_scope
    tokens = item.subject.split(".")
    if tokens[:3] == ["gsch", "events", "req"] and len(tokens) == 5:
        return ".".join(tokens[:4]) + ".>"
    if tokens[:3] == ["gsch", "events", "cluster"] and len(tokens) == 7 and tokens[4] == "node":
        return ".".join(tokens[:6]) + ".>"
    return item.subject


@dataclass(eq=False)
class _Member:
    items: list[Append]
    future: asyncio.Future[list[int]]
    scopes: frozenset[str]
    deadline: float
    refusals: int = 0  # times resent after a refusal on local knowledge alone
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.items)


class GroupCommitter:
    def __init__(self, store: EventStore, max_groups_in_flight: int) -> None:
        self._store = store
        self._queue: deque[_Member] = deque()
        self._busy_scopes: set[str] = set()
        self._slots = asyncio.Semaphore(max_groups_in_flight)
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, items: list[Append]) -> list[int]:
        if len(items) > MAX_GROUP_MESSAGES:
            raise StoreError(f"{len(items)} events in one decision; at most {MAX_GROUP_MESSAGES}")
        loop = asyncio.get_running_loop()
        member = _Member(
            items=items,
            future=loop.create_future(),
            scopes=frozenset(scope_of(item) for item in items),
            deadline=time.monotonic() + self._store.give_up_after,
        )
        self._queue.append(member)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return await member.future

    async def close(self) -> None:
        tasks = [t for t in (self._pump, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for member in self._queue:
            if not member.future.done():
                member.future.set_exception(StoreUnavailableError("event store closed"))

    def _take_group(self) -> list[_Member]:
        group: list[_Member] = []
        messages = 0
        taken: set[str] = set()
        kept: deque[_Member] = deque()
        precheck = self._store.precheck
        while self._queue:
            member = self._queue.popleft()
            if member.future.done():
                continue
            if precheck is not None and not _rebase(member, precheck):
                # Already known to be stale: sending it would only get the group refused.
                _fail(member, KnownStaleError("an expected scope moved on before sending"))
                continue
            clash = not member.scopes.isdisjoint(self._busy_scopes) or not (
                member.scopes.isdisjoint(taken)
            )
            if clash or messages + member.size > MAX_GROUP_MESSAGES:
                kept.append(member)
                continue
            group.append(member)
            taken |= member.scopes
            messages += member.size
        self._queue = kept
        self._busy_scopes |= taken
        return group

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._slots.acquire()
                group = self._take_group()
                if not group:
                    self._slots.release()
                    break  # everything waiting clashes with a group in flight
                task = asyncio.create_task(self._send(group))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, group: list[_Member]) -> None:
        try:
            refused = await self._attempt(group)
        except asyncio.CancelledError:
            for member in group:
                _fail(member, StoreUnavailableError("event store closed"))
            raise
        finally:
            # The server is free for the next group even while this one is being settled.
            self._slots.release()
            self._wake.set()
        try:
            if refused is not None:
                await self._settle(group, *refused)
        finally:
            for member in group:
                self._busy_scopes -= member.scopes
            self._wake.set()

    async def _attempt(self, group: list[_Member]) -> tuple[str | None, bool] | None:
        """Send the group. None when every member is resolved; else (retry reason or None,
        whether the outcome is unknown) for `_settle`."""
        items = [item for member in group for item in member.items]
        try:
            sequences = await self._store.publish_batch(items)
        except TRANSIENT as exc:
            return repr(exc), True
        except Rejected as exc:
            if exc.err_code in (WRONG_LAST_SEQUENCE, BATCH_DUPLICATE_MSG_ID):
                return None, False
            if exc.err_code == BATCH_TOO_MANY_INFLIGHT:
                await asyncio.sleep(0.05)
                self._requeue(group, f"server busy: {exc.description}")
                return None
            for member in group:
                _fail(member, StoreError(exc.description))
            return None
        offset = 0
        for member in group:
            _resolve(member, sequences[offset : offset + member.size])
            offset += member.size
        return None

    async def _settle(self, group: list[_Member], retry_reason: str | None, unknown: bool) -> None:
        """After a refused or unanswered group: resolve each member.

        A refused group stored nothing. When the writer can bring its own view up to date
        (`catch_up`) and re-validate (`precheck`), that is done first for everyone at the cost
        of one read, and a member refused for the first time is simply sent again. Members
        refused again, and every member of a group whose outcome is unknown (a timeout), are
        checked against the log one by one."""
        precheck = self._store.precheck
        catch_up = self._store.catch_up
        local = not unknown and precheck is not None and catch_up is not None
        if local and catch_up is not None:
            with contextlib.suppress(*TRANSIENT):
                await catch_up()

        async def check(member: _Member) -> _Member | None:
            if precheck is not None and not _rebase(member, precheck):
                _fail(member, KnownStaleError("an expected scope moved on"))
                return None
            if local and member.refusals == 0:
                member.refusals += 1
                return member
            try:
                landed = await self._store.member_status(member.items)
            except ConflictError as exc:
                _fail(member, exc)
                return None
            except TRANSIENT:
                return member  # cannot tell yet: try again later
            if landed is not None:
                _resolve(member, landed)
                return None
            return member

        survivors = [m for m in await asyncio.gather(*(check(m) for m in group)) if m is not None]
        if retry_reason is not None:
            await asyncio.sleep(0.1)
        self._requeue(survivors, retry_reason or "group refused for another member")

    def _requeue(self, members: list[_Member], reason: str) -> None:
        now = time.monotonic()
        for member in members:
            if now > member.deadline:
                _fail(member, StoreUnavailableError(f"append not confirmed: {reason}"))
                continue
            self._queue.appendleft(member)
        self._wake.set()


def _rebase(member: _Member, precheck: Callable[[Append], Append | None]) -> bool:
    """Let the writer re-validate its appends on what it knows now; False if one is lost."""
    rebased = [precheck(item) for item in member.items]
    if any(item is None for item in rebased):
        return False
    member.items = [item for item in rebased if item is not None]
    return True


def _resolve(member: _Member, sequences: list[int]) -> None:
    if not member.future.done():
        member.future.set_result(sequences)


def _fail(member: _Member, exc: BaseException) -> None:
    if not member.future.done():
        member.future.set_exception(exc)
        with contextlib.suppress(asyncio.InvalidStateError):
            member.future.exception()  # mark retrieved: the submitter may be gone
