"""What a group committer tells, and learns from, the other writers racing it for the same
scopes: competing workers' commit intents (`gsch.scheduler.intent_bus`).

Before a batch goes out the committer announces what it reserves, and once the server
answered, whether it landed. While taking a group it holds back a member on whose node
another writer's batch in flight is about to reserve: that batch moves the node's history,
so the member, expecting the history as it is now, could only get refused, and with it every
other member of its (atomic) batch. A held member waits, like a member whose scope is busy,
until the other batch is settled; then it is rebased on its writer's view (the node's newer
sequence, its fit checked again) as it is before any group. Hints never decide an outcome:
the member still goes out conditional on what its writer checked, and a hold ends after
MAX_HOLD whatever the hints say, so forged or lost hints cost time or a refusal, nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gsch.eventstore.appends import Append, Rejected
from gsch.eventstore.members import Member
from gsch.metrics import COMMITS_HELD

# The longest a member is held back in all, whatever the hints say: an intent expires sooner
# (gsch.scheduler.intents.EXPIRY) unless others keep coming for the same node.
MAX_HOLD = 1.0


class CommitHints(Protocol):
    async def announce(self, items: Sequence[Append]) -> int | None:
        """Tell the other writers a batch of `items` is going out; a token for `answered`,
        or None when the batch reserves nothing they would care about."""

    async def answered(self, token: int, landed: bool) -> None:
        """Tell them the batch announced as `token` landed, or was refused."""

    def contested(self, items: Sequence[Append]) -> bool:
        """Whether another writer's batch in flight will move a scope `items` expect."""

    def listen(self, settled: Callable[[], None]) -> None:
        """Call `settled` whenever another writer's batch stops counting as in flight."""


def hold(member: Member, hints: CommitHints, now: float) -> bool:
    """Whether to keep `member` out of the group being taken. Only a member whose writer
    offered its view is held: without one, nothing would rebase it afterwards."""
    if member.revalidator is None or not hints.contested(member.items):
        return False
    if member.held_since is None:
        member.held_since = now
        COMMITS_HELD.inc()
        return True
    return now - member.held_since < MAX_HOLD


async def publish_announced(
    publish: Callable[[Sequence[Append]], Awaitable[list[int]]],
    hints: CommitHints,
    items: Sequence[Append],
) -> list[int]:
    """Publish a batch, announced to the other writers before and answered after. A batch
    whose outcome is unknown (a timeout) is not answered: its announcement expires."""
    token = await hints.announce(items)
    if token is None:
        return await publish(items)
    try:
        sequences = await publish(items)
    except Rejected:
        await hints.answered(token, landed=False)
        raise
    await hints.answered(token, landed=True)
    return sequences
