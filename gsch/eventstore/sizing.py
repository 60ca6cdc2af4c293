"""How large a group may be when more waits than one batch should carry.

A batch is atomic: one stale member (another worker reserved its node first) gets the whole
batch refused, nothing of it stored, and every other member goes out again in the next
batch. With a share `p` of decisions stale, a group of `n` lands whole with probability
(1 - p)^n, so a batch lands n·(1 - p)^n decisions on average, most at n = 1/p (e.g. 100
decisions when one in a hundred loses its race). Smaller groups waste fewer members per
refusal but need more batches, and the stream's batches are what is scarce: the limit only
binds when a backlog waits, and then the most decisions per batch is what ends it soonest.
Below that, groups are as large as what arrived, whatever the limit.
"""

from __future__ import annotations

from collections import deque

MAX_GROUP_MESSAGES = 500  # the server takes up to 1000 per batch
MIN_GROUP_MESSAGES = 12
# Batches remembered for the share of stale decisions: a few seconds of a busy worker.
WINDOW = 64


class GroupSize:
    def __init__(self) -> None:
        # (decisions, messages, refused) of each recent batch
        self._batches: deque[tuple[int, int, bool]] = deque(maxlen=WINDOW)
        self.limit = MAX_GROUP_MESSAGES  # messages in the next group, at most

    def answered(self, decisions: int, messages: int, refused: bool) -> None:
        """A batch of `decisions` landed, or was refused for a stale member."""
        self._batches.append((decisions, messages, refused))
        refusals = sum(1 for _, _, was_refused in self._batches if was_refused)
        if not refusals:
            self.limit = MAX_GROUP_MESSAGES
            return
        sent = sum(n for n, _, _ in self._batches)
        per_decision = sum(m for _, m, _ in self._batches) / sent
        best = sent / refusals  # 1/p decisions: one refusal counts one stale member
        self.limit = max(MIN_GROUP_MESSAGES, min(MAX_GROUP_MESSAGES, round(best * per_decision)))
