"""Play each arrival pattern for each policy on the real pipeline, and the sweep of the far
cluster's round trip; collect every video's modelled response time."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gsch.tools.experiment.pipeline import Outcome, Pipeline
from gsch.tools.experiment.scenario import (
    Pattern,
    PolicySpec,
    Scenario,
    poisson_offsets,
    request_body,
)

# Real seconds between two plays, so the workers' snapshots have folded the last releases
# before the next play's first request is planned.
SETTLE = 0.1


@dataclass(frozen=True)
class Sample:
    """One video: its response time in modelled seconds (publish to finished), where it ran,
    and how long gsch took to place and bind it (real milliseconds)."""

    response: float
    cluster: str | None
    placing_ms: float
    waited: bool


@dataclass
class Result:
    scenario: str
    policy: str
    far_ms: float
    samples: list[Sample] = field(default_factory=list)
    makespan: float = 0.0  # modelled seconds from the first publish to the last finish
    failed: int = 0

    @property
    def mean(self) -> float:
        return statistics.fmean(s.response for s in self.samples) if self.samples else 0.0

    @property
    def p95(self) -> float:
        ordered = sorted(s.response for s in self.samples)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0

    def share_on(self, cluster: str) -> float:
        on = sum(1 for s in self.samples if s.cluster == cluster)
        return on / len(self.samples) if self.samples else 0.0


def sample(outcome: Outcome, scale: float) -> Sample | None:
    """The modelled response: the wait for capacity and the run are modelled time (divided by
    the scale); gsch's own placing, when the request never waited, is counted as it was (a
    few real milliseconds that would otherwise be magnified a hundredfold)."""
    if outcome.bound_at is None or outcome.finished_at is None:
        return None
    placing = outcome.bound_at - outcome.published_at
    pending = placing / scale if outcome.waited else placing
    run = (outcome.finished_at - outcome.bound_at) / scale
    return Sample(pending + run, outcome.cluster, 1000 * placing, outcome.waited)


class Runner:
    def __init__(self, scenario: Scenario, quick: bool) -> None:
        self.scenario = scenario
        self.scale = scenario.spec.time_scale
        self.quick = quick
        self._plays = 0

    def _videos(self, pattern: Pattern) -> int:
        return min(pattern.videos, 4) if self.quick else pattern.videos

    def _bursts(self, pattern: Pattern) -> int:
        return 1 if self.quick else pattern.bursts

    async def play(
        self, pipeline: Pipeline, pattern: Pattern, policy: PolicySpec, far_ms: float
    ) -> Result:
        self._plays += 1
        play = self._plays
        chooser = random.Random(f"{self.scenario.spec.seed}/{pattern.name}/{far_ms}")
        result = Result(pattern.name, policy.name, far_ms)
        alone = max(
            self.scenario.alone(pipeline.topology, c.name) for c in pipeline.topology.clusters
        )
        count = 0

        async def publish() -> str:
            nonlocal count
            request_id = f"x{play:03d}-{count:03d}"
            count += 1
            body = request_body(self.scenario, policy, request_id, chooser)
            await pipeline.publish(request_id, body)
            return request_id

        def patience(videos: int) -> float:
            # Twice as long as running every video one after the other, and a minute.
            return 60.0 + 2 * videos * alone * self.scale

        published: list[str] = []
        if pattern.arrivals == "one-at-a-time":
            for _ in range(self._videos(pattern)):
                published.append(await publish())
                await pipeline.wait_done(published[-1:], patience(1))
        elif pattern.arrivals == "bursts":
            for _ in range(self._bursts(pattern)):
                burst = [await publish() for _ in range(self._videos(pattern))]
                published.extend(burst)
                await pipeline.wait_done(burst, patience(len(burst)))
        else:
            offsets = poisson_offsets(pattern, self.scenario.spec.seed)[: self._videos(pattern)]
            begin = time.monotonic()
            for offset in offsets:
                await asyncio.sleep(max(0.0, begin + offset * self.scale - time.monotonic()))
                published.append(await publish())
            await pipeline.wait_done(published, patience(len(published)))
        outcomes = [pipeline.outcomes[r] for r in published]
        for outcome in outcomes:
            found = sample(outcome, self.scale)
            if found is None:
                result.failed += 1
            else:
                result.samples.append(found)
        finished = [o.finished_at for o in outcomes if o.finished_at is not None]
        if finished:
            result.makespan = (max(finished) - min(o.published_at for o in outcomes)) / self.scale
        await asyncio.sleep(SETTLE)
        return result


async def run_experiment(
    scenario: Scenario, data_root: Path, quick: bool, say: Callable[[str], None]
) -> list[Result]:
    """Every pattern x policy on the test bed, then the sweep's pattern x policy at each of
    its far round trips (a fresh pipeline per test bed)."""
    spec = scenario.spec
    runner = Runner(scenario, quick)
    sweep = spec.sweep
    beds: list[tuple[float | None, list[Pattern]]] = [(None, spec.scenarios)]
    if sweep is not None:
        swept = [p for p in spec.scenarios if p.name == sweep.scenario]
        beds += [(ms, swept) for ms in sweep.far_ms]
    results = []
    for far_ms, patterns in beds:
        topology = scenario.topology if far_ms is None else scenario.with_far_ms(far_ms)
        far = far_ms if far_ms is not None else _far_ms(scenario)
        pipeline = Pipeline(
            topology, spec.workers, data_root / f"far-{far:g}ms", spec.time_scale, spec.seed
        )
        await pipeline.start()
        try:
            for pattern in patterns:
                for policy in spec.policies:
                    result = await runner.play(pipeline, pattern, policy, far)
                    say(
                        f"  far {far:g} ms, {pattern.name}, {policy.name}: mean"
                        f" {result.mean:.1f} s over {len(result.samples)} videos"
                    )
                    results.append(result)
        finally:
            await pipeline.stop()
    return results


def _far_ms(scenario: Scenario) -> float:
    sweep = scenario.spec.sweep
    if sweep is None:
        return 0.0
    found = scenario.topology.rtt(scenario.source, sweep.far_cluster, "")
    return found if found is not None else 0.0
