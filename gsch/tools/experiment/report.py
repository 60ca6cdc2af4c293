"""What `gsch experiment` says: the duration model's assumptions, the table of response times
next to the seed's published ones, the sweep, and a chart (matplotlib, optional)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gsch.tools.experiment.runner import Result
from gsch.tools.experiment.scenario import Scenario

MISSING_MATPLOTLIB = (
    "chart not written: matplotlib is not installed (pip install 'gsch[experiment]');"
    " the table above has every figure"
)


def assumptions(scenario: Scenario) -> list[str]:
    model, spec, topology = scenario.model, scenario.spec, scenario.topology
    seed = spec.seed_result
    shared = ", ".join(f"{name} {seconds:g} s" for name, seconds in model.shared) or "none"
    source = "/".join(scenario.source)
    far = max(spec.levels[0], key=lambda c: topology.rtt(scenario.source, c, "") or 0.0)
    near = min(spec.levels[0], key=lambda c: topology.rtt(scenario.source, c, "") or 0.0)
    return [
        f"a video's run = {model.base_seconds:g} s + {model.per_ms_seconds:g} s x RTT(ms) from"
        f" {source} to its worker, then a first-come turn on each shared resource ({shared}),"
        " holding its worker throughout",
        f"calibrated on the seed's two totals (one video, one run each): {seed.with_low_latency:g}"
        f" s with low latency, on {near} ({scenario.alone(topology, near):.1f} s here), and"
        f" {seed.without_low_latency:g} s without, assumed on {far}"
        f" ({scenario.alone(topology, far):.1f} s here); two totals fix two unknowns",
        "the GPU's share of a video (the inference stage) is assumed; the slides give no stage"
        " times. It does not depend on where the video ran",
        f"a video takes a whole worker ({spec.video.cpu} cores); a request that finds none waits"
        " (gsch's blocked queue) until one is released",
        f"time runs x{spec.time_scale:g} (a modelled second is {spec.time_scale:g} s); waiting"
        " and running are modelled time, gsch's own placing (a few ms) is counted as it was",
        "random worker: the clusters in a random order drawn by their workers' count (a"
        " uniformly random worker), the other as fallback; name order: the clusters by name,"
        " which is what latency-blind policies did here while equal scores were broken by name",
        f"{spec.workers} competing worker processes, an embedded nats-server, the simulator;"
        f" seed {spec.seed} for arrivals and random draws",
    ]


def table(scenario: Scenario, results: Sequence[Result]) -> list[str]:
    near = min(
        scenario.spec.levels[0], key=lambda c: scenario.topology.rtt(scenario.source, c, "") or 0.0
    )
    bed = [r for r in results if r.far_ms == _bed_far(scenario, results)]
    lines = [
        f"{'scenario':<18} {'policy':<24} {'mean s':>7} {'p95 s':>7} {'makespan s':>10}"
        f" {'on ' + near:>10} {'videos':>6}"
    ]
    for r in bed:
        lines.append(
            f"{r.scenario:<18} {r.policy:<24} {r.mean:>7.1f} {r.p95:>7.1f} {r.makespan:>10.1f}"
            f" {r.share_on(near):>10.0%} {len(r.samples):>6}"
            + (f"  ({r.failed} failed)" if r.failed else "")
        )
    seed = scenario.spec.seed_result
    lines.append(
        f"{'seed (GEdge)':<18} {'without low latency':<24} {seed.without_low_latency:>7.1f}"
    )
    lines.append(f"{'seed (GEdge)':<18} {'with low latency':<24} {seed.with_low_latency:>7.1f}")
    return lines


def sweep_table(scenario: Scenario, results: Sequence[Result]) -> list[str]:
    sweep = scenario.spec.sweep
    if sweep is None:
        return []
    swept = [r for r in results if r.scenario == sweep.scenario]
    policies = list(dict.fromkeys(r.policy for r in swept))
    far_values = sorted({r.far_ms for r in swept})
    mean = {(r.policy, r.far_ms): r.mean for r in swept}
    lines = [f"{'far RTT':>8} " + " ".join(f"{p:>24}" for p in policies)]
    for far in far_values:
        cells = " ".join(f"{mean.get((p, far), float('nan')):>24.1f}" for p in policies)
        lines.append(f"{far:>6g}ms {cells}")
    return lines


def _bed_far(scenario: Scenario, results: Sequence[Result]) -> float:
    """The far round trip of the test bed itself (the first pipeline's)."""
    return results[0].far_ms if results else 0.0


def as_json(scenario: Scenario, results: Sequence[Result]) -> dict[str, Any]:
    return {
        "scenario_file": str(scenario.path),
        "assumptions": assumptions(scenario),
        "seed_result": {
            "without_low_latency": scenario.spec.seed_result.without_low_latency,
            "with_low_latency": scenario.spec.seed_result.with_low_latency,
        },
        "results": [
            {
                "scenario": r.scenario,
                "policy": r.policy,
                "far_ms": r.far_ms,
                "mean_s": round(r.mean, 2),
                "p95_s": round(r.p95, 2),
                "makespan_s": round(r.makespan, 2),
                "videos": len(r.samples),
                "failed": r.failed,
                "by_cluster": {
                    c: round(r.share_on(c), 3) for c in sorted({s.cluster or "" for s in r.samples})
                },
                "placing_ms_median": _median_placing(r),
            }
            for r in results
        ],
    }


def _median_placing(result: Result) -> float | None:
    """gsch's own publish-to-bound time (real ms) of the videos that did not wait."""
    placing = sorted(s.placing_ms for s in result.samples if not s.waited)
    return round(placing[len(placing) // 2], 1) if placing else None


def write_chart(scenario: Scenario, results: Sequence[Result], path: Path) -> str | None:
    """The chart as a PNG; None when written, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return MISSING_MATPLOTLIB
    bed_far = _bed_far(scenario, results)
    bed = [r for r in results if r.far_ms == bed_far]
    patterns = list(dict.fromkeys(r.scenario for r in bed))
    policies = list(dict.fromkeys(r.policy for r in bed))
    seed = scenario.spec.seed_result
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5))
    width = 0.8 / (len(policies) + (1 if patterns else 0))
    for index, policy in enumerate(policies):
        means = [
            next((r.mean for r in bed if r.scenario == p and r.policy == policy), 0.0)
            for p in patterns
        ]
        xs = [x + index * width for x in range(len(patterns))]
        left.bar(xs, means, width, label=policy)
    # The seed's two published totals, next to the first pattern (one video).
    seed_x = len(policies) * width
    # One bar over the other: the lower (with low latency) drawn on the higher (without).
    without = f"seed: without low latency ({seed.without_low_latency:g} s)"
    left.bar([seed_x], [seed.without_low_latency], width, color="white", edgecolor="black",
             hatch="//", label=without)  # fmt: skip
    left.bar([seed_x], [seed.with_low_latency], width, color="lightgrey", edgecolor="black",
             label=f"seed: with low latency ({seed.with_low_latency:g} s)")  # fmt: skip
    left.set_xticks([x + 0.4 - width / 2 for x in range(len(patterns))], patterns)
    left.set_ylabel("mean response per video (modelled s)")
    left.set_title(f"Seed test bed (far cluster {bed_far:g} ms)")
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    sweep = scenario.spec.sweep
    if sweep is not None:
        swept = [r for r in results if r.scenario == sweep.scenario]
        for policy in policies:
            points = sorted((r.far_ms, r.mean) for r in swept if r.policy == policy)
            right.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=policy)
        right.set_xlabel(f"round trip from the source to {sweep.far_cluster} (ms)")
        right.set_ylabel("mean response per video (modelled s)")
        right.set_title(f"{sweep.scenario}: sweep of the far round trip")
        right.legend(fontsize="small")
    figure.suptitle("gsch experiment: the GEdge seed's YOLO4 evaluation through gsch's pipeline")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
