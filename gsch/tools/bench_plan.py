"""`gsch bench --plan-only`: the planner alone, on a generated fleet in memory (no NATS), so
its cost per request can be compared across fleet sizes, policies and forms of levels; and
what the snapshot costs to keep: resident memory per node, and cluster events folded per
second while the standing rankings every policy walks are kept current."""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import time
from typing import Any

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.request import Policy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.tools.bench_fleet import Case, Fleet, cases, churn, fleet_events, requests

CHURN_EVENTS = 100_000


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _resident_bytes() -> int:
    """This process's resident set now (Linux /proc), or its peak where that is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _build(clusters: int, nodes_per_cluster: int) -> tuple[ClusterSnapshot, Fleet, dict[str, Any]]:
    gc.collect()
    before = _resident_bytes()
    snapshot = ClusterSnapshot()
    fleet = Fleet([], {}, [])
    folding = folding_cpu = 0.0
    count = 0
    for count, event in enumerate(
        fleet_events(clusters, nodes_per_cluster, 0.5, clusters, fleet), start=1
    ):
        started, started_cpu = time.perf_counter(), time.thread_time()
        snapshot.apply(event, count)
        folding += time.perf_counter() - started
        folding_cpu += time.thread_time() - started_cpu
    gc.collect()
    gc.freeze()  # as a worker does once its snapshot has caught up (see SnapshotFeed)
    nodes = clusters * nodes_per_cluster
    figures = {
        "events": count,
        "build_events_per_s": round(count / folding),
        "build_events_per_cpu_s": round(count / folding_cpu),
        "resident_bytes_per_node": round((_resident_bytes() - before) / nodes),
        "resident_after": _resident_bytes(),
    }
    return snapshot, fleet, figures


def _time_case(
    case: Case, snapshot: ClusterSnapshot, fleet: Fleet, count: int, budget: float
) -> dict[str, Any]:
    profile = PROFILES[case.policy]
    made = requests(case, count + 1, fleet)
    started = time.perf_counter()
    plan(profile, made[0], snapshot)  # the first after start builds rankings and orders
    first = (time.perf_counter() - started) * 1000
    timings: list[float] = []
    cpu: list[float] = []  # this thread's CPU time: the plan's own cost on a busy machine
    ends = time.perf_counter() + budget
    placed = 0
    for request in made[1:]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        decision = plan(profile, request, snapshot)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        placed += decision.placed
        if time.perf_counter() > ends:
            break
    return {
        "policy": case.policy.value,
        "mode": case.mode,
        "levels": case.levels,
        "requests": len(timings),
        "placed": placed,
        "first_ms": round(first, 3),
        "p50_ms": round(statistics.median(timings), 3),
        "p99_ms": round(_percentile(timings, 0.99), 3),
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": round(_percentile(cpu, 0.99), 3),
    }


def _churn_rates(
    snapshot: ClusterSnapshot, fleet: Fleet, seq: int, every_case: list[Case]
) -> tuple[int, int]:
    """Events folded per second (wall clock, and CPU time of this thread) once every case
    has built its rankings, which the events then keep current: timed up to and including
    one plan per case afterwards, so ranking work deferred from the fold to the next read
    is counted too."""
    events = churn(fleet, CHURN_EVENTS, seed=seq)
    after = [(PROFILES[case.policy], requests(case, 1, fleet, seed=seq)[0]) for case in every_case]
    started, started_cpu = time.perf_counter(), time.thread_time()
    for offset, event in enumerate(events, start=1):
        snapshot.apply(event, seq + offset)
    for profile, request in after:
        plan(profile, request, snapshot)
    wall, cpu = time.perf_counter() - started, time.thread_time() - started_cpu
    return round(len(events) / wall), round(len(events) / cpu)


def run_plan_bench(args: argparse.Namespace) -> int:
    policies = list(PROFILES) if args.policy == "all" else [Policy(args.policy)]
    budget = args.case_seconds if args.case_seconds is not None else float("inf")
    fleets = []
    for clusters in args.fleet_sizes:
        snapshot, fleet, figures = _build(clusters, args.nodes_per_cluster)
        every_case = cases(policies)
        rows = [
            _time_case(case, snapshot, fleet, args.plan_requests, budget) for case in every_case
        ]
        gc.collect()
        figures["rankings_bytes_per_node"] = round(
            (_resident_bytes() - figures.pop("resident_after"))
            / (clusters * args.nodes_per_cluster)
        )
        wall, cpu = _churn_rates(snapshot, fleet, figures["events"], every_case)
        figures["churn_events_per_s"], figures["churn_events_per_cpu_s"] = wall, cpu
        fleets.append(
            {"clusters": clusters, "nodes_per_cluster": args.nodes_per_cluster, **figures,
             "plans": rows}
        )  # fmt: skip
        del snapshot, fleet
    if args.output == "json":
        print(json.dumps({"plan_only": fleets}, indent=2))
        return 0
    print(f"gsch bench --plan-only: up to {args.plan_requests} requests per case (ms)")
    for entry in fleets:
        print(
            f"{entry['clusters']} clusters x {entry['nodes_per_cluster']} nodes:"
            f" {entry['events']} events folded at {entry['build_events_per_s']}/s"
            f" ({entry['build_events_per_cpu_s']}/CPU-s),"
            f" {entry['resident_bytes_per_node']} B resident per node"
            f" (+{entry['rankings_bytes_per_node']} B with every case's rankings);"
            f" then with those rankings kept (and a plan per case after): "
            f"{entry['churn_events_per_s']} events/s"
            f" ({entry['churn_events_per_cpu_s']}/CPU-s)"
        )
        for row in entry["plans"]:
            case = f"{row['policy']} {row['mode']}"
            print(
                f"  {case:<33} {row['levels']:<9} p50 {row['p50_ms']:>8} p99 {row['p99_ms']:>8}"
                f"  CPU p99 {row['cpu_p99_ms']:>8}  first {row['first_ms']:>8}"
                f"  ({row['requests']} requests, {row['placed']} placed)"
            )
    return 0
