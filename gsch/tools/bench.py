"""`gsch bench`: the scheduler end to end on a fresh embedded server (or a 3-node JetStream
cluster), next to the raw JetStream publish rate of nats-py measured in the same run on the
same server, so the ratio to the client's own limit is visible.

Three loads: closed loop (`--requests N`, all published at once: throughput), open loop
(`--rate R --duration D`: latency under a steady rate) and `--sweep` (open loops at rising
rates: the highest whose p99 publish → scheduled stays within `--p99-target-ms`). Every run
ends with `gsch audit` over the whole log.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gsch.audit import audit
from gsch.clusters.topology import generated_topology
from gsch.logs import setup_logging
from gsch.tools.bench_load import Observed, Timeline, Workload, publish_all, publish_at_rate
from gsch.tools.bench_scrape import Samples, between, conflicts, group_commits, scrape
from gsch.tools.bench_system import CpuMeter, Shape, System, running_system
from gsch.tools.bench_traffic import TrafficMeter

# How long a load may take to settle after its last publish, at least.
_SETTLE_SECONDS = 120.0


@dataclass
class Step:
    """One load on the running system and what it gave."""

    rate: float | None  # None: closed loop
    observed: Observed
    counted: Samples  # what the workers counted during the load
    cpu: dict[str, Any]
    settled: bool
    messages: dict[str, Any] | None = None  # per placement (see bench_traffic)

    def passes(self, p99_target_ms: float) -> bool:
        """Within target: all bound, p99 publish → scheduled within it, publisher kept up."""
        p99 = self.observed.figures()["publish_to_scheduled_ms"]["p99"]
        kept_up = self.rate is None or self.observed.achieved_rate >= 0.95 * self.rate
        return self.settled and p99 is not None and p99 <= p99_target_ms and kept_up

    def figures(self) -> dict[str, Any]:
        placed = max(1, self.observed.scheduled)
        by_scope = conflicts(self.counted)
        total = sum(by_scope.values())
        cpu_per_placement = {
            name: round(1000 * seconds / placed, 3)
            for name, seconds in self.cpu["cpu_seconds"].items()
        }
        return {
            "offered_rate": self.rate,
            **self.observed.figures(),
            "settled": self.settled,
            "conflicts": total,
            "conflicts_by_scope": by_scope,
            "conflicts_per_placement": round(total / placed, 4),
            "group_commit": group_commits(self.counted, self.cpu["wall_seconds"]),
            "cpu": self.cpu,
            "cpu_ms_per_placement": cpu_per_placement,
            "messages_per_placement": self.messages,
        }


async def _run_load(
    system: System, workload: Workload, series: str, count: int, rate: float | None
) -> Step:
    requests = workload.requests(series, count)
    request_ids = [r for r, _ in requests]
    timeline = Timeline(system.store)
    await timeline.start(await system.store.last_seq())
    counted_before = await scrape(system.worker_ports)
    meter = CpuMeter(system.pids)
    traffic = TrafficMeter(system.monitor_url, system.pids)
    await traffic.start()
    meter.start()
    js = system.nc.jetstream()
    try:
        if rate is None:
            await publish_all(js, requests, timeline)
        else:
            await publish_at_rate(js, requests, rate, timeline)
        settled = await timeline.wait_settled(request_ids, max(_SETTLE_SECONDS, count / 50))
        cpu = meter.report()
    finally:
        await timeline.stop()
    counted = between(counted_before, await scrape(system.worker_ports))
    observed = Observed.of(timeline, request_ids)
    messages = await traffic.report(observed.scheduled)
    return Step(rate, observed, counted, cpu, settled, messages)


def _next_rate(passed: float | None, failed: float | None, growth: float) -> float:
    if failed is None:
        assert passed is not None
        return passed * growth
    if passed is None:
        return failed / growth
    return (passed + failed) / 2


async def _sweep(system: System, workload: Workload, args: argparse.Namespace) -> list[Step]:
    """Open loops at rising rates: grow by `--sweep-growth` until one misses the target, then
    bisect between the last that met it and the first that did not."""
    steps: list[Step] = []
    rate = args.rate
    passed: float | None = None
    failed: float | None = None
    for index in range(args.sweep_steps):
        count = max(2, round(rate * args.duration))
        step = await _run_load(system, workload, f"sweep{index}", count, rate)
        steps.append(step)
        if step.passes(args.p99_target_ms):
            passed = rate if passed is None else max(passed, rate)
        else:
            failed = rate if failed is None else min(failed, rate)
        if passed is not None and failed is not None and failed / passed < 1 + args.precision:
            break
        rate = round(_next_rate(passed, failed, args.sweep_growth), 1)
    return steps


async def run_bench(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-bench-"))
    shape = Shape(
        args.clusters, args.nodes_per_cluster, args.workers, args.nats_nodes, args.raw_messages,
        api=args.api,
    )  # fmt: skip
    topology = generated_topology(args.clusters, args.nodes_per_cluster)
    workload = Workload(tuple(c.name for c in topology.clusters), args.policy, args.levels)
    async with running_system(shape, data_dir) as system:
        if args.sweep:
            steps = await _sweep(system, workload, args)
        elif args.rate is not None:
            count = max(2, round(args.rate * args.duration))
            steps = [await _run_load(system, workload, "open", count, args.rate)]
        else:
            steps = [await _run_load(system, workload, "bench", args.requests, None)]
        report = await audit(system.store)
    result = _result(args, shape, system.raw_rate, steps)
    result["audit"] = report.summary()
    result["audit_ok"] = report.ok
    print(json.dumps(result, indent=2) if args.output == "json" else _text(result))
    complete = all(step.settled for step in steps)
    return 0 if complete and report.ok else 1


def _result(
    args: argparse.Namespace, shape: Shape, raw_rate: float, steps: list[Step]
) -> dict[str, Any]:
    mode = "sweep" if args.sweep else "open" if args.rate is not None else "closed"
    result: dict[str, Any] = {
        "mode": mode,
        "workers": shape.workers,
        "nats_nodes": shape.nats_nodes,
        "clusters": shape.clusters,
        "nodes_per_cluster": shape.nodes_per_cluster,
        "policy": args.policy,
        "raw_publish_per_second": round(raw_rate, 1),
        "steps": [],
    }
    for step in steps:
        figures = step.figures()
        figures["ratio_to_raw_publish"] = round(figures["placements_per_second"] / raw_rate, 4)
        result["steps"].append(figures)
    if args.sweep:
        good = [s.rate for s in steps if s.rate is not None and s.passes(args.p99_target_ms)]
        result["p99_target_ms"] = args.p99_target_ms
        result["highest_rate_within_target"] = max(good) if good else None
    return result


def _ms(latency: dict[str, float | None]) -> str:
    return " / ".join(
        "-" if v is None or math.isnan(v) else f"{v:g}"
        for v in (latency["p50"], latency["p95"], latency["p99"], latency["max"])
    )


def _groups(figures: dict[str, Any]) -> str:
    return (
        f"{figures['batches_per_second']} batches/s, {figures['decisions_per_batch']} decisions "
        f"per batch (p99 <= {figures['decisions_per_batch_p99']}); waited to be sent "
        f"{figures['wait_ms']} ms mean (p99 <= {figures['wait_p99_ms']}), round trip "
        f"{figures['round_trip_ms']} ms mean (p99 <= {figures['round_trip_p99_ms']}); "
        f"intents: {figures['intent_messages']} messages, {figures['held']} decisions held, "
        f"{figures['intents_expired']} reservations expired unanswered"
    )


def _messages(messages: dict[str, Any]) -> str:
    processes = ", ".join(
        f"{name} {counts['sent']:g} sent / {counts['received']:g} received"
        for name, counts in messages["by_process"].items()
    )
    return (
        f"server received {messages['server_received']:g}, delivered "
        f"{messages['server_delivered']:g}; {processes}"
    )


def _text(result: dict[str, Any]) -> str:
    lines = [
        f"gsch bench ({result['mode']}): {result['workers']} workers, "
        f"{result['nats_nodes']} NATS node(s), {result['clusters']}x{result['nodes_per_cluster']} "
        f"nodes, {result['policy']}; raw pipelined JetStream publishes (nats-py, same server): "
        f"{result['raw_publish_per_second']:g}/s"
    ]
    for step in result["steps"]:
        offered = step["offered_rate"]
        load = f"open loop at {offered:g}/s" if offered else "closed loop"
        cpu = ", ".join(f"{name} {cores:g}" for name, cores in step["cpu"]["cores"].items())
        lines += [
            f"  {load}: {step['requests']} requests, published at "
            f"{step['achieved_publish_rate']:g}/s, {step['scheduled']} scheduled, "
            f"{step['bound']} bound{'' if step['settled'] else ' (NOT ALL SETTLED)'}",
            f"    placements/s (first publish -> last commit): {step['placements_per_second']:g}; "
            f"ratio to raw publish {step['ratio_to_raw_publish']:g}",
            f"    publish -> scheduled p50/p95/p99/max ms: {_ms(step['publish_to_scheduled_ms'])}",
            f"    publish -> bound     p50/p95/p99/max ms: {_ms(step['publish_to_bound_ms'])}",
            f"    conflicts: {step['conflicts']} ({step['conflicts_per_placement']:.2%} of "
            f"placements) {step['conflicts_by_scope']}",
            f"    group commit: {_groups(step['group_commit'])}",
            f"    CPU (cores busy): {cpu}; total {step['cpu']['total_cores']:g}",
        ]
        if step["messages_per_placement"]:
            lines.append(f"    messages per placement: {_messages(step['messages_per_placement'])}")
    if result["mode"] == "sweep":
        lines.append(
            f"  highest rate with p99 publish -> scheduled <= {result['p99_target_ms']:g} ms: "
            f"{result['highest_rate_within_target']}"
        )
    lines.append(f"  audit: {result['audit']}")
    return "\n".join(lines)
