"""The standing orders under the planner's searches: a sorted sequence kept in short runs must
behave as one sorted list whatever is added and removed (runs split and vanish on the way)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gsch.clusters.rankings import LazyOrder, SortedRuns

ENTRIES = st.tuples(st.sampled_from([-3.0, -1.5, 0.0, 2.0]), st.sampled_from("abcdefghij"))


@given(st.lists(ENTRIES, unique=True), st.lists(st.tuples(st.booleans(), ENTRIES)))
def test_runs_keep_one_sorted_order(
    initial: list[tuple[float, str]], steps: list[tuple[bool, tuple[float, str]]]
) -> None:
    runs = SortedRuns(initial, run=2)
    model = sorted(initial)
    for adding, entry in steps:
        if adding and entry not in model:
            runs.add(entry)
            model.append(entry)
        elif not adding and entry in model:
            runs.remove(entry)
            model.remove(entry)
        model.sort()
        assert list(runs) == model
        assert len(runs) == len(model)


@given(st.lists(ENTRIES, unique=True), st.lists(st.integers(0, 2), max_size=30))
def test_a_lazy_order_hands_every_reader_the_sorted_entries(
    entries: list[tuple[float, str]], turns: list[int]
) -> None:
    """Readers interleaved in any way each read the entries in order, sorting shared."""
    order = LazyOrder(list(entries))
    readers = [iter(order) for _ in range(3)]
    read: list[list[tuple[float, str]]] = [[], [], []]
    for turn in turns:
        found = next(readers[turn], None)
        if found is not None:
            read[turn].append(found)
    for reader, got in zip(readers, read, strict=True):
        assert got + list(reader) == sorted(entries)
