"""The batch pacer: batches of a busy process are spaced while they queue at the server, never
while they do not, and never after a pause."""

from __future__ import annotations

import pytest

from gsch.eventstore.pacing import MAX_GAP_BATCHES, BatchPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_pacer_never_holds_a_batch() -> None:
    pacer = BatchPacer(clock=Clock())
    assert pacer.delay() == 0.0
    pacer.sent()
    assert pacer.delay() == 0.0  # nothing queued yet: no gap


def test_queued_round_trips_widen_the_gap_a_step_at_a_time_up_to_a_few_batches() -> None:
    pacer = BatchPacer(max_gap=1.0, clock=Clock())
    pacer.answered(0.010)  # a batch with nothing ahead of it
    assert pacer.gap == 0.0
    gaps = []
    for _ in range(12):
        pacer.answered(0.030)  # behind another batch
        gaps.append(pacer.gap)
    assert gaps[:3] == pytest.approx([0.005, 0.010, 0.015])  # half a batch per queued one
    assert max(gaps) == pytest.approx(MAX_GAP_BATCHES * 0.010)


def test_the_gap_never_exceeds_its_bound_however_slow_the_stream() -> None:
    pacer = BatchPacer(max_gap=0.02, clock=Clock())
    pacer.answered(0.050)
    for _ in range(20):
        pacer.answered(0.500)
    assert pacer.gap == pytest.approx(0.02)


def test_round_trips_near_the_uncontended_one_narrow_the_gap_back_to_nothing() -> None:
    pacer = BatchPacer(max_gap=1.0, clock=Clock())
    pacer.answered(0.010)
    for _ in range(4):
        pacer.answered(0.030)
    assert pacer.gap > 0
    for _ in range(3):
        pacer.answered(0.012)  # a little jitter is not a queue
    assert pacer.gap == pytest.approx(0.005)
    pacer.answered(0.011)
    assert pacer.gap == 0.0


def test_only_a_batch_within_the_gap_of_the_last_one_waits() -> None:
    clock = Clock()
    pacer = BatchPacer(max_gap=1.0, clock=clock)
    pacer.answered(0.010)
    for _ in range(4):
        pacer.answered(0.030)
    gap = pacer.gap
    pacer.sent()
    clock.now += gap / 4
    assert pacer.delay() == pytest.approx(gap * 3 / 4)  # busy: wait for the rest of the gap
    clock.now += gap
    assert pacer.delay() == 0.0  # after a pause longer than the gap: at once
