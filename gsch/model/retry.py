"""GEdge's queue values as a policy: which level a request waits at, and when a failure ends it.

K* failures promote a request to the First level, more than Z* end it as failed, and the
backoff between attempts doubles up to a bound. Pure: the worker, the binder and the
simulator all decide their failures with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gsch.model.events import Explanation, RequestFailed, RequestRequeued
from gsch.model.request import QueueLevel, Request

if TYPE_CHECKING:
    from gsch.runtime.config import QueueConfig


@dataclass(frozen=True)
class RetryPolicy:
    first_after_failures: int  # K*
    max_failures: int  # Z*
    backoff_base: float
    backoff_max: float

    @classmethod
    def from_config(cls, config: QueueConfig) -> RetryPolicy:
        return cls(
            config.first_after_failures,
            config.max_failures,
            config.backoff_base,
            config.backoff_max,
        )

    def backoff(self, failures: int) -> float:
        # The exponent is bounded: 2**1100 does not convert to a float (OverflowError).
        exponent = min(max(0, failures - 1), 64)
        return float(min(self.backoff_max, self.backoff_base * 2**exponent))

    def after_failure(
        self,
        attempt: int,
        reason: str,
        history: list[str],
        now: float,
        explanation: Explanation | None = None,
        *,
        fast: bool = False,
        blocked: bool = False,
        avoid: tuple[str, ...] = (),
    ) -> RequestRequeued | RequestFailed:
        """Attempt number `attempt` failed: requeue for the next, or give up.

        `fast` is the request's flag (it keeps the request at the Fast level until K* promotes
        it); `blocked` says nothing could hold the request, so it waits for capacity; `avoid`
        names clusters that refused it, for the next attempt to pass over."""
        failures = attempt
        if failures > self.max_failures:
            return RequestFailed(
                at=now,
                attempt=attempt,
                reasons=(*history, f"attempt {attempt}: {reason}"),
                explanation=explanation,
            )
        return RequestRequeued(
            at=now,
            attempt=attempt + 1,
            reason=f"attempt {attempt}: {reason}",
            not_before=now + self.backoff(failures),
            explanation=explanation,
            level=self.level_of(fast, failures),
            blocked=blocked,
            avoid_clusters=avoid,
        )

    def level(self, request: Request, failures: int) -> QueueLevel:
        return self.level_of(request.fast, failures)

    def level_of(self, fast: bool, failures: int) -> QueueLevel:
        if failures > self.first_after_failures:
            return QueueLevel.FIRST
        return QueueLevel.FAST if fast else QueueLevel.BASE
