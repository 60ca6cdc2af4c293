"""GEdge's dispatch rounds: shares per level and the order a saturated worker starts jobs in."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsch.eventstore.consumers import Room
from gsch.model.request import QueueLevel
from gsch.scheduler.dispatch import STARTS_PER_TURN, Job, LevelDispatcher, round_shares

F, S, B = QueueLevel.FIRST, QueueLevel.FAST, QueueLevel.BASE


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        ((5, 5, 5), (2, 2, 2)),  # every level full: N* each
        ((0, 5, 5), (0, 4, 2)),  # First's unused share goes to Fast (2N* minus First's)
        ((1, 0, 9), (1, 0, 5)),  # ...and on to Base: the round stays 3N*
        ((0, 0, 9), (0, 0, 6)),
        ((9, 9, 0), (2, 2, 0)),  # First never takes more than N*; shares never flow up
        ((0, 3, 0), (0, 3, 0)),
        ((0, 0, 0), (0, 0, 0)),
    ],
)
def test_round_shares_follow_gedge_dispatcher(
    waiting: tuple[int, int, int], expected: tuple[int, int, int]
) -> None:
    shares = round_shares(dict(zip((F, S, B), waiting, strict=True)), per_level=2)
    assert (shares[F], shares[S], shares[B]) == expected


@given(
    st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.integers(1, 10)
)  # fmt: skip
def test_round_never_exceeds_its_budget_and_leaves_no_share_unused_that_could_be_taken(
    first: int, fast: int, base: int, per_level: int
) -> None:
    waiting = {F: first, S: fast, B: base}
    shares = round_shares(waiting, per_level)
    taken = 0
    for budget, level in enumerate((F, S, B), start=1):
        assert shares[level] <= waiting[level]
        taken += shares[level]
        assert taken <= budget * per_level  # what a level and those above it may take
        # Less than its share only when the level ran dry.
        assert taken == budget * per_level or shares[level] == waiting[level]


class _Item:
    """Stands in for a held JetStream message: the dispatcher only naks or abandons it."""

    subject = "test"
    seq = 0

    def __init__(self) -> None:
        self.naked = False

    async def nak(self, delay: float | None = None) -> None:
        self.naked = True

    def abandon(self) -> None:
        pass


async def test_saturated_worker_serves_every_level_of_a_round_in_order() -> None:
    started: list[str] = []
    release = asyncio.Event()

    def job(level: QueueLevel, name: str) -> Job:
        async def run() -> None:
            started.append(name)
            await release.wait()

        return Job(_Item(), level, run)  # type: ignore[arg-type]

    room = Room(100)
    dispatcher = LevelDispatcher(per_level=1, max_running=1, room=room)
    for index in range(3):
        for level in (B, S, F):  # queued in reverse priority: order must come from levels
            room.take()
            dispatcher.put(job(level, f"{level.value}{index}"))
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    # One slot: each job must finish before the next starts.
    for _ in range(9):
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.sleep(0)
        release.clear()
    stop.set()
    release.set()
    await asyncio.wait_for(running, 5)
    assert started[:6] == ["first0", "fast0", "base0", "first1", "fast1", "base1"]


async def test_stopping_hands_queued_messages_back() -> None:
    items = [_Item() for _ in range(4)]
    gate = asyncio.Event()

    async def wait() -> None:
        await gate.wait()

    room = Room(10)
    dispatcher = LevelDispatcher(per_level=2, max_running=1, room=room)
    for item in items:
        room.take()
        dispatcher.put(Job(item, B, wait))  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(running, 5)
    # The running job finished; the three that waited were handed back, and room returned.
    assert [item.naked for item in items] == [False, True, True, True]
    assert room.used == 0


async def test_a_backlog_is_started_a_bounded_number_per_turn_of_the_event_loop() -> None:
    """Hundreds of queued jobs start a few dozen per turn, so answers from the log are read
    between them instead of after all of them."""
    loop = asyncio.get_running_loop()
    turn = 0

    def tick() -> None:
        nonlocal turn
        turn += 1
        if turn < 10_000:
            loop.call_soon(tick)

    gate = asyncio.Event()
    started_in_turn: Counter[int] = Counter()

    async def wait() -> None:
        started_in_turn[turn] += 1
        await gate.wait()

    room = Room(1000)
    dispatcher = LevelDispatcher(per_level=1000, max_running=512, room=room)
    for _ in range(200):
        room.take()
        dispatcher.put(Job(_Item(), B, wait))  # type: ignore[arg-type]
    loop.call_soon(tick)
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await asyncio.sleep(0.1)
    assert sum(started_in_turn.values()) == 200
    assert max(started_in_turn.values()) == STARTS_PER_TURN
    stop.set()
    gate.set()
    await asyncio.wait_for(running, 5)
