"""Other workers' commits in flight, counted on this worker's snapshot until the log has them.

Competing workers send their decisions in atomic batches, each reservation conditional on its
node's history. A batch another worker has in flight will move the history of every node it
reserves on: a decision of ours on such a node is refused when it reaches the server, and
since a batch is atomic, so is every other decision travelling with it. So each worker tells
the others, on core NATS, what a batch is about to reserve (an *intent*) and, once the server
answered, whether it landed (`intent_bus.py`). This table holds the intents received:

- each announced reservation counts as pending on its node (`ClusterSnapshot.assume`), so the
  plans made here go around the room the other worker is about to take;
- it stops counting exactly once: when the matching CapacityReserved (same request and node)
  is folded from the log, which counts it from then on; shortly after its batch was refused,
  unless the sender announced it again meanwhile (it resends a refused batch's decisions at
  once); or after `expiry`, when the sender died mid-batch or its answer was lost;
- the group committer asks whether a node has a live foreign intent (`contested`) and holds a
  decision on it back until the intent is settled (`gsch.eventstore.hints`).

Intents are hints; correctness stays with the server's expectations. The re-check just before
a commit uses the log's numbers alone (`fits_now`: confirmed capacity, never pending), and the
server stores a reservation only if its node's history is exactly what was checked. An intent
only ever makes a node look fuller than the log says (amounts are never negative), and holds a
decision back for at most `MAX_HOLD`. A forged intent can cost placement quality and some
latency; lost intents cost the refusals and retries there were without them. Neither can
place a request twice or overcommit a node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.metrics import INTENT_SETTLED_HOW, INTENTS_IGNORED, INTENTS_LIVE, INTENTS_SETTLED
from gsch.model.events import CapacityReserved, Placement

# How long an announced reservation counts without its answer or its fold: many round trips
# of a batch (milliseconds), short enough that a dead sender's hints fade before anyone
# notices the room they held back.
EXPIRY = 1.0
# How long a refused batch's reservations still count: its sender sends them again at once
# (all but the decisions that went stale), announced anew, and the new intent takes them over.
# Dropping them at the refusal would let decisions held for them go out just as the resend
# does, into the very race the hold avoided.
REFUSED_GRACE = 0.25
# Reservations of others counted at once: a bound on what forged or runaway intents can hold
# in memory (a busy worker has a few hundred in flight).
MAX_LIVE = 20_000

Key = tuple[str, str, str]  # request, cluster, node
GroupId = tuple[str, int]  # sender, the sender's number for the batch


@dataclass(slots=True)
class _Group:
    keys: set[Key] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


class IntentTable:
    def __init__(
        self,
        snapshot: ClusterSnapshot,
        expiry: float = EXPIRY,
        max_live: int = MAX_LIVE,
        refused_grace: float = REFUSED_GRACE,
    ) -> None:
        self._snapshot = snapshot
        self.expiry = expiry
        self.refused_grace = refused_grace
        self.max_live = max_live
        self._live: dict[Key, tuple[GroupId, Placement]] = {}
        self._groups: dict[GroupId, _Group] = {}
        self._contested: dict[tuple[str, str], int] = {}  # live intents per node
        # One counter per way of settling (a label lookup takes a lock: done once here).
        self._settled = {how: INTENTS_SETTLED.labels(how=how) for how in INTENT_SETTLED_HOW}
        # Called whenever an intent stops counting: decisions held back for it may go.
        self.settle_listeners: list[Callable[[], None]] = []
        snapshot.reservation_listeners.append(self.folded)

    def __len__(self) -> int:
        return len(self._live)

    def contested(self, cluster: str, node: str) -> bool:
        """Whether another worker has a reservation on the node in flight."""
        return (cluster, node) in self._contested

    def announced(self, group: GroupId, reservations: Sequence[tuple[str, Placement]]) -> int:
        """Count a foreign batch's reservations, (request id, placement) each, as pending;
        how many were counted. Skipped: nodes this snapshot does not know, reservations the
        log already holds (the intent came after the fold), anything beyond `max_live`."""
        if group in self._groups:
            return 0  # the same announcement again: counted once
        entry = self._groups[group] = _Group()
        for request_id, placement in reservations:
            if len(self._live) >= self.max_live:
                INTENTS_IGNORED.labels(reason="too_many").inc()
                break
            cluster = self._snapshot.clusters.get(placement.cluster)
            node = cluster.nodes.get(placement.node) if cluster is not None else None
            if node is None or request_id in node.reservations:
                continue
            key = (request_id, placement.cluster, placement.node)
            if key in entry.keys:
                continue  # named twice in one batch: counted once
            if key in self._live:
                self._drop(key, "replaced")  # announced again in a later batch of its sender
            self._live[key] = (group, placement)
            entry.keys.add(key)
            where = (placement.cluster, placement.node)
            self._contested[where] = self._contested.get(where, 0) + 1
            self._snapshot.assume((placement,))
        if not entry.keys:
            del self._groups[group]
            return 0
        entry.timer = asyncio.get_running_loop().call_later(self.expiry, self._expire, group)
        INTENTS_LIVE.set(len(self._live))
        return len(entry.keys)

    def answered(self, group: GroupId, landed: bool) -> None:
        """The sender's batch was answered. Landed: its reservations count until folded from
        the log (dropping them sooner would leave a moment in which neither the intent nor
        the log counts them), or until expiry. Refused: those its sender does not announce
        again within `refused_grace` stop counting then."""
        entry = self._groups.get(group)
        if landed or entry is None:
            return
        if entry.timer is not None:
            entry.timer.cancel()
        loop = asyncio.get_running_loop()
        entry.timer = loop.call_later(min(self.expiry, self.refused_grace), self._refused, group)

    def folded(self, event: CapacityReserved) -> None:
        """A reservation was folded from the log: the log counts it from now on."""
        key = (event.request_id, event.cluster, event.node)
        if key in self._live:
            self._drop(key, "folded")
            INTENTS_LIVE.set(len(self._live))

    def close(self) -> None:
        """Stop counting everything (the worker stops, or intents are switched off)."""
        for group in list(self._groups):
            self._end(group, "closed")
        if self.folded in self._snapshot.reservation_listeners:
            self._snapshot.reservation_listeners.remove(self.folded)

    def _expire(self, group: GroupId) -> None:
        self._end(group, "expired")

    def _refused(self, group: GroupId) -> None:
        self._end(group, "refused")

    def _end(self, group: GroupId, how: str) -> None:
        entry = self._groups.get(group)
        if entry is None:
            return
        for key in list(entry.keys):
            self._drop(key, how)
        INTENTS_LIVE.set(len(self._live))

    def _drop(self, key: Key, how: str) -> None:
        """Stop counting one reservation: the one place pending is given back."""
        group, placement = self._live.pop(key)
        entry = self._groups[group]
        entry.keys.discard(key)
        if not entry.keys:
            if entry.timer is not None:
                entry.timer.cancel()
            del self._groups[group]
        where = (placement.cluster, placement.node)
        remaining = self._contested[where] - 1
        if remaining:
            self._contested[where] = remaining
        else:
            del self._contested[where]
        self._snapshot.forget((placement,))
        if how not in ("folded", "replaced"):
            # Room a plan here went around is free again: requests found blocked meanwhile
            # (nothing fitted while it counted) are woken, as when capacity is released.
            for grown in self._snapshot.capacity_listeners:
                grown(placement.cluster)
        self._settled[how].inc()
        for settled in self.settle_listeners:
            settled()
