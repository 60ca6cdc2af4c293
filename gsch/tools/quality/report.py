"""`gsch bench --quality`: run the families, compare each policy with the optimum, print."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

from gsch.model.request import Policy
from gsch.tools.quality.instances import Instance, instances
from gsch.tools.quality.optimum import (
    Optimum,
    SolverMissing,
    fewest_nodes,
    least_rtt,
    most_placed,
    solver_module,
)
from gsch.tools.quality.placing import Placed, place_in_order, total_rtt

# (policy, mode) pairs compared in each measure; the first of each is what the README leads
# with, the others are the baselines.
PACKERS = ((Policy.BIN_PACK, "default"), (Policy.BIN_PACK, "mostallocated"))
FILLERS = (*PACKERS, (Policy.MOST_REQUESTED, "default"))
NEAREST = ((Policy.LOW_LATENCY, "fromnode"), (Policy.MOST_REQUESTED, "default"))


@dataclass(frozen=True)
class Measure:
    """One figure: a family, what is compared, and the policies compared on it."""

    family: str
    name: str  # e.g. "nodes / optimum"
    policies: tuple[tuple[Policy, str], ...]
    solve: Callable[[Instance, float], Optimum]
    ratio: Callable[[Instance, Placed, Optimum], float]
    higher_is_better: bool


MEASURES = (
    Measure("mixed", "nodes / optimum", PACKERS, fewest_nodes,
            lambda i, p, o: p.nodes_used / o.conservative, False),
    Measure("uniform", "nodes / optimum", PACKERS, fewest_nodes,
            lambda i, p, o: p.nodes_used / o.conservative, False),
    Measure("overloaded", "placed / optimum", FILLERS, most_placed,
            lambda i, p, o: p.count / o.conservative, True),
    Measure("latency", "RTT / optimum", NEAREST, least_rtt,
            lambda i, p, o: total_rtt(i, p) / o.conservative, False),
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    family: str
    measure: str
    policy: str
    mode: str
    mean: float
    worst: float
    instances: int
    all_placed: int  # instances where every request was placed
    placed: int  # requests placed, over every instance
    requests: int
    proven: int  # instances whose optimum the solver proved


def _row(measure: Measure, policy: Policy, mode: str, runs: list[tuple[Instance, Optimum]]) -> Row:
    ratios, all_placed, placed, requests = [], 0, 0, 0
    for instance, optimum in runs:
        found = place_in_order(instance, policy, mode)
        ratios.append(measure.ratio(instance, found, optimum))
        all_placed += found.count == len(instance.demands)
        placed += found.count
        requests += len(instance.demands)
    worst = min(ratios) if measure.higher_is_better else max(ratios)
    return Row(
        measure.family, measure.name, policy.value, mode, round(statistics.fmean(ratios), 3),
        round(worst, 3), len(runs), all_placed, placed, requests,
        sum(1 for _, o in runs if o.proven),
    )  # fmt: skip


def quality_rows(count: int, first_seed: int, time_limit: float) -> list[Row]:
    rows: list[Row] = []
    for measure in MEASURES:
        runs = [
            (i, measure.solve(i, time_limit)) for i in instances(measure.family, count, first_seed)
        ]
        rows.extend(_row(measure, policy, mode, runs) for policy, mode in measure.policies)
    return rows


def run_quality_bench(args: argparse.Namespace) -> int:
    try:
        solver_module()
    except SolverMissing as exc:
        print(f"gsch bench --quality: {exc}", file=sys.stderr)
        return 1
    rows = quality_rows(args.instances, args.first_seed, args.solver_time_limit)
    if args.output == "json":
        print(
            json.dumps({"first_seed": args.first_seed, "rows": [asdict(r) for r in rows]}, indent=2)
        )
        return 0
    print(
        f"gsch bench --quality: {args.instances} seeded instances per family from seed"
        f" {args.first_seed}, each placed request by request through the planner, against"
        " HiGHS's optimum for the whole instance (its bound where it was not proven within"
        f" {args.solver_time_limit:g} s: never flattering)"
    )
    columns = ("family", "measure", "policy", "mean", "worst", "all placed", "requests placed")
    print("{:<11} {:<17} {:<34} {:>6} {:>6}  {:>10}  {:>15}".format(*columns))
    for r in rows:
        name = f"{r.policy} ({r.mode})"
        print(
            f"{r.family:<11} {r.measure:<17} {name:<34} {r.mean:>6.3f} {r.worst:>6.3f}"
            f"  {f'{r.all_placed}/{r.instances}':>10}  {f'{r.placed}/{r.requests}':>15}"
        )
    proven = {r.family: r.proven for r in rows}
    print(
        "optima proven per family: "
        + ", ".join(f"{f} {p}/{args.instances}" for f, p in proven.items())
    )
    return 0
