"""How often a group committer may send a batch: often while the stream keeps up, less often
while its batches queue at the server.

On a file stream of one replica the server stages every atomic batch in a store of its own,
with synchronous writes and fsyncs, one batch after another under the stream's lock: a batch
costs it some milliseconds of disk latency whatever its size (5 to 18 ms on the project's
machine, depending on what else writes to the disk). Competing workers each keep a batch in
flight and send the next as soon as it lands, so with two of them the stream is never idle,
every batch waits behind the other worker's, and a few hundred requests per second go out as
batches of one or two decisions that saturate it.

The pacer watches its own batches' round trips, as TCP Vegas watches a connection's: the
fastest recent round trip is what a batch costs when nothing is ahead of it; a round trip
well above that means batches queue at the server. While they queue, the minimum gap between
the starts of two batches of this process grows by a step per batch; while they do not, it
shrinks. Decisions arriving within the gap wait and go out together, so the stream sees
fewer, larger batches from each worker until the queue is gone. The gap only spaces batches
of a busy process: a decision arriving after a pause longer than the gap goes out at once,
and a full group never waits.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Round trips remembered for the uncontended cost of a batch: long enough to include a batch
# that found nothing ahead of it, short enough to follow the disk when it slows down.
BASE_WINDOW = 64
# A round trip counts as queued when it exceeds the uncontended one by this share and margin
# (a batch's fsync varies by a millisecond or so without anything ahead of it).
QUEUED_SHARE = 0.5
QUEUED_MARGIN = 0.001
# The gap is at most this many uncontended batches: enough for as many workers to take turns
# at the stream without queueing behind one another (the gap that ends the queue is about
# the number of batching processes times a batch's cost)...
MAX_GAP_BATCHES = 4
# ...and never more than this, so that a decision waits at most this long for others to join.
MAX_GAP = 0.05


class BatchPacer:
    def __init__(self, max_gap: float = MAX_GAP, clock: Callable[[], float] = time.monotonic):
        self.max_gap = max_gap
        self._clock = clock
        self._round_trips: deque[float] = deque(maxlen=BASE_WINDOW)
        self.gap = 0.0  # seconds between the starts of two batches, at least
        self._last_sent: float | None = None

    @property
    def base(self) -> float | None:
        """The fastest recent round trip: a batch's cost with nothing ahead of it."""
        return min(self._round_trips) if self._round_trips else None

    def now(self) -> float:
        """The pacer's clock: round trips are measured with it."""
        return self._clock()

    def delay(self) -> float:
        """Seconds until the next (not full) batch may go: 0 when it may go now."""
        if self._last_sent is None or self.gap <= 0:
            return 0.0
        return max(0.0, self._last_sent + self.gap - self._clock())

    def sent(self) -> None:
        self._last_sent = self._clock()

    def answered(self, round_trip: float) -> None:
        """A batch's answer came after `round_trip` seconds: widen the gap while batches
        queue at the server, narrow it while they do not. The step is half the uncontended
        cost of a batch: a queue one batch deep is worked off in two batches' time."""
        self._round_trips.append(round_trip)
        base = min(self._round_trips)
        step = max(base / 2, QUEUED_MARGIN)
        if round_trip > base * (1 + QUEUED_SHARE) + QUEUED_MARGIN:
            self.gap = min(self.max_gap, MAX_GAP_BATCHES * base, self.gap + step)
        else:
            self.gap = max(0.0, self.gap - step)
