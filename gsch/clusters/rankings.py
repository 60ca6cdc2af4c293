"""Standing orders of clusters: the clusters of one selection, in order of a value computed from
their aggregates, kept in order as events change those aggregates, so a planner can walk a
selection best first and stop early instead of scanning it.

Clusters are ordered within groups (clusters of one node shape, say): a bound that depends on
the workload's share of a node is then monotone in the value inside each group, and a planner
merges the groups' orders with the request's own bound per group.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gsch.clusters.snapshot import ClusterView

# A cluster's place in a ranking: its group and its value there (higher ranks first).
RankKey = Callable[["ClusterView"], tuple[Hashable, float]]
Entry = tuple[float, str]  # (-value, name): ascending order is best first, then by name

RUN = 512  # entries per run: a move shifts at most two runs, whatever the selection's size


class SortedRuns:
    """A sorted sequence of distinct entries as a list of short sorted runs: adding or removing
    one costs a binary search and a shift within one run (microseconds at a million entries,
    where one flat list would move megabytes), iterating costs what it yields."""

    def __init__(self, entries: Iterable[Entry] = (), run: int = RUN) -> None:
        ordered = sorted(entries)
        self._run = run
        self._runs = [ordered[i : i + run] for i in range(0, len(ordered), run)]
        self._lasts = [run[-1] for run in self._runs]
        self._size = len(ordered)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Entry]:
        return chain.from_iterable(self._runs)

    def add(self, entry: Entry) -> None:
        self._size += 1
        if not self._runs:
            self._runs.append([entry])
            self._lasts.append(entry)
            return
        index = min(bisect.bisect_left(self._lasts, entry), len(self._runs) - 1)
        run = self._runs[index]
        bisect.insort(run, entry)
        self._lasts[index] = run[-1]
        if len(run) > 2 * self._run:
            half = self._run
            self._runs[index : index + 1] = [run[:half], run[half:]]
            self._lasts[index : index + 1] = [run[half - 1], run[-1]]

    def remove(self, entry: Entry) -> None:
        index = bisect.bisect_left(self._lasts, entry)
        run = self._runs[index]  # the entry is there: callers remove only what they added
        del run[bisect.bisect_left(run, entry)]
        self._size -= 1
        if run:
            self._lasts[index] = run[-1]
        else:
            del self._runs[index]
            del self._lasts[index]


class RankedClusters:
    """The clusters of one selection by `key`, best first within each group, kept in order as
    their aggregates change and as clusters join or leave the selection. A change is only
    noted when folded (`mark`) and the cluster re-placed when the ranking is next read
    (`flush`): several events on one cluster between two plans cost one move, and rankings
    no plan reads cost a set insertion per event."""

    def __init__(self, clusters: Iterable[ClusterView], key: RankKey) -> None:
        self.key = key
        self.keys: dict[str, tuple[Hashable, float]] = {c.name: key(c) for c in clusters}
        self.stale: set[str] = set()  # clusters of this selection changed since the last flush
        members: dict[Hashable, list[Entry]] = {}
        for name, (group, value) in self.keys.items():
            members.setdefault(group, []).append((-value, name))
        self.groups = {group: SortedRuns(entries) for group, entries in members.items()}

    def __len__(self) -> int:
        return len(self.keys)

    def mark(self, name: str) -> None:
        """The cluster's aggregates may have changed: re-place it at the next `flush`."""
        if name in self.keys:
            self.stale.add(name)

    def flush(self, clusters: Mapping[str, ClusterView]) -> None:
        """Re-place every cluster marked since the last flush."""
        for name in self.stale:
            cluster = clusters.get(name)
            if cluster is not None:
                self.update(cluster)
        self.stale.clear()

    def update(self, cluster: ClusterView) -> None:
        old = self.keys.get(cluster.name)
        if old is None:
            return  # not in this selection
        new = self.key(cluster)
        if new != old:
            self._remove(cluster.name, old)
            self._add(cluster.name, new)

    def add(self, cluster: ClusterView) -> None:
        if cluster.name not in self.keys:
            self._add(cluster.name, self.key(cluster))

    def discard(self, name: str) -> None:
        old = self.keys.get(name)
        if old is not None:
            self._remove(name, old)

    def _add(self, name: str, key: tuple[Hashable, float]) -> None:
        group, value = key
        self.keys[name] = key
        self.groups.setdefault(group, SortedRuns()).add((-value, name))

    def _remove(self, name: str, key: tuple[Hashable, float]) -> None:
        group, value = key
        runs = self.groups[group]
        runs.remove((-value, name))
        if not runs:
            del self.groups[group]
        del self.keys[name]

    def ordered(self) -> list[Entry]:
        """Every entry best first regardless of group (for tests and explanations)."""
        return sorted(chain.from_iterable(self.groups.values()))


class LazyOrder:
    """Entries handed out in ascending order, sorted only as far as anyone has read: a heap
    (built in linear time) feeds a sorted prefix that later readers replay. For orders that
    are rebuilt often (a new latency report) and read only at the front."""

    def __init__(self, entries: list[Entry]) -> None:
        heapq.heapify(entries)
        self._heap = entries
        self._prefix: list[Entry] = []

    def __iter__(self) -> Iterator[Entry]:
        index = 0
        while True:
            if index < len(self._prefix):
                yield self._prefix[index]
            elif self._heap:
                self._prefix.append(heapq.heappop(self._heap))
                yield self._prefix[index]
            else:
                return
            index += 1
