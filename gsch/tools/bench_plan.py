"""`gsch bench --plan-only`: the planner alone, on a generated fleet in memory (no NATS), so
its cost per request can be compared across fleet sizes."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.clusters.topology import generated_topology
from gsch.model.events import CapacityReserved, ClusterDeclared, NodeDeclared
from gsch.model.ids import numbered_request_id
from gsch.model.request import Policy, Request
from gsch.model.resources import Resources
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES


def _snapshot(clusters: int, nodes_per_cluster: int, load: float, seed: int) -> ClusterSnapshot:
    """The fleet, with about `load` of each node's cpu already reserved (varied per node)."""
    chooser = random.Random(seed)
    snapshot = ClusterSnapshot()
    seq = 0
    for cluster in generated_topology(clusters, nodes_per_cluster).clusters:
        seq += 1
        declared = ClusterDeclared(
            at=0, cluster=cluster.name, tier=cluster.tier, labels=cluster.labels
        )
        snapshot.apply(declared, seq)
        for node in cluster.nodes:
            seq += 1
            inventory = NodeDeclared(
                at=0,
                cluster=cluster.name,
                node=node.name,
                allocatable=node.allocatable,
                labels=node.labels,
            )
            snapshot.apply(inventory, seq)
            used = int(node.allocatable.cpu_m * load * chooser.uniform(0.5, 1.5))
            seq += 1
            load_event = CapacityReserved(
                at=0,
                cluster=cluster.name,
                node=node.name,
                request_id=numbered_request_id("load", seq),
                attempt=1,
                amount=Resources(cpu_m=used),
            )
            snapshot.apply(load_event, seq)
    return snapshot


def _requests(shape: str, count: int, names: list[str], policy: Policy) -> list[Request]:
    chooser = random.Random(7)
    made = []
    for index in range(count):
        if shape == "names":
            picked = chooser.sample(names, 6)
            levels: tuple[tuple[str, ...], ...] = (
                tuple(picked[:2]),
                tuple(picked[2:4]),
                tuple(picked[4:]),
            )
        else:  # near edge first, then edge, then cloud, by selector
            levels = (("tier=near-edge",), ("tier=edge",), ("tier=cloud",))
        made.append(
            Request(
                request_id=numbered_request_id("plan", index),
                policy=policy,
                mode="default",
                levels=levels,
                demand=Resources(cpu_m=500, memory=256 << 20, pods=1),
            )
        )
    return made


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_plan_bench(args: argparse.Namespace) -> int:
    policy = Policy(args.policy)
    results = []
    for clusters in args.fleet_sizes:
        snapshot = _snapshot(clusters, args.nodes_per_cluster, load=0.5, seed=clusters)
        names = sorted(snapshot.clusters)
        for shape in ("names", "selectors"):
            timings = []
            for request in _requests(shape, args.plan_requests, names, policy):
                started = time.perf_counter()
                plan(PROFILES[policy], request, snapshot)
                timings.append((time.perf_counter() - started) * 1000)
            results.append(
                {
                    "clusters": clusters,
                    "nodes_per_cluster": args.nodes_per_cluster,
                    "levels": shape,
                    "p50_ms": round(statistics.median(timings), 3),
                    "p99_ms": round(_percentile(timings, 0.99), 3),
                }
            )
    if args.output == "json":
        print(json.dumps({"policy": policy.value, "plan_only": results}, indent=2))
    else:
        print(f"gsch bench --plan-only: {policy.value}, {args.plan_requests} requests per case")
        for row in results:
            fleet = f"{row['clusters']:>6} clusters x {row['nodes_per_cluster']} nodes"
            timing = f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
            print(f"  {fleet}, levels by {row['levels']:<9}: {timing}")
    return 0
