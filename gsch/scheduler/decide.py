"""Pure decisions of the worker: which events an outcome turns into. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from gsch.config import Config, ConfigError, IntakeConfig, QueueConfig
from gsch.model.events import Explanation, RequestFailed, RequestRequeued
from gsch.model.intake import IntakeRules, Rejection, decode_request
from gsch.model.request import SELECTOR_PATTERN, QueueLevel, Request
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules, ProjectClusters


@dataclass(frozen=True)
class RetryPolicy:
    """GEdge's system values: K* failures promote to the First level, more than Z* end it."""

    first_after_failures: int
    max_failures: int
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


def intake_rules(config: IntakeConfig) -> IntakeRules:
    return IntakeRules(
        max_request_bytes=config.max_request_bytes,
        allowed_kinds=frozenset(config.allowed_kinds),
    )


def planner_rules(config: Config) -> PlannerRules:
    """The rules every plan of this process follows (workers and the dry run alike)."""
    for name, project in config.projects.items():
        for selector in project.selectors:
            if not SELECTOR_PATTERN.match(selector):
                raise ConfigError(f"projects.{name}.selectors: {selector!r} is not key=value[&…]")
    return PlannerRules(
        max_latency_age=config.planner.max_latency_age,
        projects={
            name: ProjectClusters.of(project.clusters, project.selectors)
            for name, project in config.projects.items()
        },
    )


def admit(data: bytes, rules: IntakeRules, fallback_id: str) -> Request | Rejection:
    """Decode a request as a worker takes it: any accepted form, then a policy this version
    can place. The dry run calls exactly this, so it answers what a worker would."""
    decoded = decode_request(data, rules, fallback_id)
    if isinstance(decoded, Request) and decoded.policy not in PROFILES:
        available = ", ".join(p.value for p in PROFILES)
        return Rejection(
            decoded.request_id,
            "policy",
            f"{decoded.policy} is recognised but not available yet (available: {available})",
            decoded.form,
        )
    return decoded
