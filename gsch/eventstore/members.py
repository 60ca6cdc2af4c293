"""A decision waiting in the group committer, and what can be told about it alone: the
scopes it touches, whether a refusal concerns it, its writer's re-validation, its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from gsch.eventstore.appends import Append, Revalidator
from gsch.eventstore.subjects import NodeKey, SubjectError, parse_subject


def scope_of(item: Append) -> str:
    """The consistency scope an append touches: its expected scope, or its entity's history."""
    if item.expect_scope is not None:
        return item.expect_scope
    try:
        key, _ = parse_subject(item.subject)
    except SubjectError:
        return item.subject
    return key.history


@dataclass(eq=False)
class Member:
    items: list[Append]
    future: asyncio.Future[list[int]]
    scopes: frozenset[str]
    deadline: float
    revalidator: Revalidator | None = None  # the writer's own view, if it offered one
    refusals: int = 0  # times resent after a refusal on local knowledge alone
    # Changes each time a group takes the member or hands it back early: a group frees the
    # scopes only of members it still holds when it ends.
    taken: int = 0
    submitted: float = field(default_factory=time.monotonic)
    sent: bool = False  # sent at least once (its wait is counted once)
    # When it was first held back for another writer's batch in flight (see `hints.py`).
    held_since: float | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.items)


@dataclass(frozen=True)
class Refusal:
    """Why a group did not land: a retry reason (transient), whether its outcome is unknown
    (a timeout), and for a wrong last sequence the sequence the stale scope ends at."""

    retry_reason: str | None
    unknown: bool
    last_seq: int | None = None


def conflict_scope(subject: str | None) -> str:
    """How a lost race is counted: on a node, or on a request's history."""
    try:
        key, _ = parse_subject(subject or "")
    except SubjectError:
        return "request"
    return "node" if isinstance(key, NodeKey) else "request"


def expects_other(member: Member, subject: str) -> bool:
    """Whether a member expects a scope that `subject` belongs to (then it is stale)."""
    for item in member.items:
        if item.expect_seq is None:
            continue
        scope = item.expect_scope or item.subject
        within = subject.startswith(scope[:-1]) if scope.endswith(">") else subject == scope
        if within:
            return True
    return False


def rebase(member: Member) -> bool:
    """Let the writer re-validate its appends on what it knows now; False if one is lost."""
    if member.revalidator is None:
        return True
    rebased = [member.revalidator.rebase(item) for item in member.items]
    if any(item is None for item in rebased):
        return False
    member.items = [item for item in rebased if item is not None]
    return True


def resolve(member: Member, sequences: list[int]) -> None:
    if not member.future.done():
        member.future.set_result(sequences)


def fail(member: Member, exc: BaseException) -> None:
    if not member.future.done():
        member.future.set_exception(exc)
        with contextlib.suppress(asyncio.InvalidStateError):
            member.future.exception()  # mark retrieved: the submitter may be gone
