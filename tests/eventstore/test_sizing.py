"""Group size under refusals: as many decisions per batch as land the most on average."""

from __future__ import annotations

from gsch.eventstore.sizing import MAX_GROUP_MESSAGES, MIN_GROUP_MESSAGES, WINDOW, GroupSize


def test_without_refusals_a_group_may_be_as_large_as_a_batch_allows() -> None:
    size = GroupSize()
    for _ in range(10):
        size.answered(20, 60, refused=False)
    assert size.limit == MAX_GROUP_MESSAGES


def test_one_stale_decision_in_n_sent_gives_groups_of_n_decisions() -> None:
    size = GroupSize()
    size.answered(10, 30, refused=True)
    for _ in range(4):
        size.answered(10, 30, refused=False)
    assert size.limit == 50 * 3  # 1/p = 50 decisions of three messages
    size.answered(10, 30, refused=True)
    assert size.limit == 30 * 3  # two in sixty


def test_frequent_refusals_never_shrink_a_group_below_the_floor() -> None:
    size = GroupSize()
    for _ in range(5):
        size.answered(2, 6, refused=True)
    assert size.limit == MIN_GROUP_MESSAGES


def test_refusals_older_than_the_window_are_forgotten() -> None:
    size = GroupSize()
    size.answered(2, 6, refused=True)
    for _ in range(WINDOW - 1):
        size.answered(2, 6, refused=False)
    assert size.limit == 2 * WINDOW * 3
    size.answered(2, 6, refused=False)
    assert size.limit == MAX_GROUP_MESSAGES
