"""Requests that fit nowhere wait here until capacity they could use appears.

Like Nomad's blocked evaluations: a request whose attempt found no room is parked, holding its
retry message (the lease is kept alive, so a crash hands it to another worker), and is looked
at again only when the cluster snapshot reports that capacity may have grown on a cluster it
could use: a release, a node (re)declared, a cluster ready again. Waking costs a dry plan on
the snapshot, no event; only a request that now fits is dispatched for a real attempt. A
slow periodic re-check covers what no event announces. Nothing is polled in a hot loop.
Parking consumes no attempt, but it is bounded: a worker parks at most `limit` requests (the
caller hands the others back to the queue), and the re-check hands a request blocked for
longer than `max_blocked_seconds` to `expire`, which fails it with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.consumers import WorkItem
from gsch.model.events import Placement
from gsch.model.request import QueueLevel, Request, is_selector
from gsch.model.resources import Resources
from gsch.scheduler.dispatch import LEVEL_ORDER

log = logging.getLogger(__name__)

# Capacity changes arrive in bursts (a workload finishing releases several nodes): gather a
# burst before re-planning.
_SETTLE_SECONDS = 0.02


@dataclass(frozen=True)
class Parked:
    item: WorkItem
    request: Request
    level: QueueLevel
    since: float = 0.0  # wall-clock time it became blocked (its requeue event's `at`)


def usable_clusters(request: Request) -> frozenset[str] | None:
    """The clusters a request could ever be placed on; None when any could (label selectors
    or no list at all)."""
    names = [name for level in request.levels for name in level]
    if not names or any(is_selector(name) for name in names):
        return None
    return frozenset(names)


class BlockedRequests:
    def __init__(
        self,
        snapshot: ClusterSnapshot,
        dry_plan: Callable[[Request], tuple[Placement, ...]],
        wake: Callable[[Parked], None],
        recheck_seconds: float,
        *,
        limit: int = 10_000,
        max_blocked_seconds: float = 3600.0,
        expire: Callable[[Parked], None] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self._dry_plan = dry_plan
        self._wake = wake
        self._recheck_seconds = recheck_seconds
        self.limit = limit
        self.max_blocked_seconds = max_blocked_seconds
        self._expire = expire
        self._parked: dict[str, Parked] = {}
        self._by_cluster: dict[str, set[str]] = {}
        self._anywhere: set[str] = set()
        self._changed: set[str] = set()  # clusters whose capacity may have grown
        self._signal = asyncio.Event()
        snapshot.capacity_listeners.append(self._on_capacity)

    def __len__(self) -> int:
        return len(self._parked)

    @property
    def full(self) -> bool:
        return len(self._parked) >= self.limit

    def expired(self, since: float, now: float | None = None) -> bool:
        """Whether a request blocked since `since` has waited longer than allowed."""
        return (now if now is not None else time.time()) - since > self.max_blocked_seconds

    def expire_overdue(self) -> int:
        """Hand every parked request blocked for too long to `expire`."""
        if self._expire is None:
            return 0
        now = time.time()
        overdue = [p for p in self._parked.values() if self.expired(p.since, now)]
        for parked in overdue:
            self.take(parked.request.request_id)
            self._expire(parked)
        return len(overdue)

    def park(self, parked: Parked) -> None:
        request_id = parked.request.request_id
        self.take(request_id)  # a redelivery replaces what was parked before
        self._parked[request_id] = parked
        clusters = usable_clusters(parked.request)
        if clusters is None:
            self._anywhere.add(request_id)
        else:
            for cluster in clusters:
                self._by_cluster.setdefault(cluster, set()).add(request_id)

    def take(self, request_id: str) -> Parked | None:
        """Remove a parked request (woken, cancelled) and return it."""
        parked = self._parked.pop(request_id, None)
        if parked is None:
            return None
        self._anywhere.discard(request_id)
        for cluster in usable_clusters(parked.request) or ():
            ids = self._by_cluster.get(cluster)
            if ids is not None:
                ids.discard(request_id)
                if not ids:
                    del self._by_cluster[cluster]
        return parked

    def _on_capacity(self, cluster: str) -> None:
        # Called for every release the snapshot folds: only note the cluster; the parked
        # requests it concerns are found once per pass.
        if self._parked:
            self._changed.add(cluster)
            self._signal.set()

    def _candidates(self, changed: set[str]) -> tuple[set[str], Resources]:
        """The parked requests that could use a changed cluster, and the most any one node
        of those clusters could now hold (per resource): a request whose demand exceeds it
        cannot fit yet, whatever its policy, and is not re-planned."""
        ids = set(self._anywhere)
        most = [0, 0, 0, 0]
        for name in changed:
            ids.update(self._by_cluster.get(name, ()))
            view = self.snapshot.clusters.get(name)
            if view is not None and view.ready:
                free = view.max_free
                for index, amount in enumerate((free.cpu_m, free.memory, free.gpu, free.pods)):
                    most[index] = max(most[index], amount)
        return ids, Resources(*most)

    async def run(self, stop: asyncio.Event) -> None:
        """Wake what fits whenever capacity changes, until `stop`; then hand every parked
        message back so another worker takes it at once."""
        expiry_due = time.monotonic() + self._recheck_seconds
        try:
            while not stop.is_set():
                recheck = False
                try:
                    async with asyncio.timeout(self._recheck_seconds):
                        await _first_of(self._signal.wait(), stop.wait())
                except TimeoutError:
                    recheck = True
                if stop.is_set():
                    break
                await asyncio.sleep(_SETTLE_SECONDS)
                self._signal.clear()
                changed, self._changed = self._changed, set()
                if time.monotonic() >= expiry_due:  # busy or idle, at least every re-check
                    expiry_due = time.monotonic() + self._recheck_seconds
                    self.expire_overdue()
                if recheck:
                    self.wake_fitting(set(self._parked), None)
                else:
                    self.wake_fitting(*self._candidates(changed))
        finally:
            for request_id in list(self._parked):
                parked = self.take(request_id)
                if parked is not None:
                    await parked.item.nak()

    def wake_fitting(self, candidates: set[str], room: Resources | None) -> int:
        """Dispatch the candidates that fit now, First level first, oldest first; with
        `room`, only those whose demand fits in it are planned. Within one pass each woken
        request counts as pending on the nodes it would take, so a release that makes room
        for one request does not wake ten."""
        rank = {level: index for index, level in enumerate(LEVEL_ORDER)}
        found = (self._parked.get(request_id) for request_id in candidates)
        order = sorted(
            (
                parked
                for parked in found
                if parked is not None and (room is None or parked.request.demand.fits_in(room))
            ),
            key=lambda parked: (rank[parked.level], parked.item.seq),
        )
        claimed: list[Placement] = []
        woken = 0
        try:
            for parked in order:
                placements = self._dry_plan(parked.request)
                if not placements:
                    continue
                self.snapshot.assume(placements)
                claimed.extend(placements)
                self.take(parked.request.request_id)
                self._wake(parked)
                woken += 1
        finally:
            self.snapshot.forget(claimed)
        if woken:
            log.debug("blocked requests woken", extra={"woken": woken, "parked": len(self)})
        return woken


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
