"""`gsch bench --plan-only` measures the planner per fleet size, policy, mode and level shape,
and what the snapshot costs to keep."""

from __future__ import annotations

import json
import subprocess
import sys

from gsch.tools.bench_fleet import MODES


def test_plan_only_bench_reports_every_policy_mode_and_level_shape() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "bench", "--plan-only", "--policy", "all",
         "--fleet-sizes", "20", "100", "--nodes-per-cluster", "4", "--plan-requests", "10",
         "-o", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)["plan_only"]
    assert [fleet["clusters"] for fleet in report] == [20, 100]
    expected = {
        (policy.value, mode, levels)
        for policy, modes in MODES.items()
        for mode in modes
        for levels in ("names", "selectors")
        if (policy.value, mode, levels) != ("GSelectedCluster", "node", "selectors")
    }
    for fleet in report:
        for figure in ("build_events_per_s", "churn_events_per_cpu_s", "resident_bytes_per_node"):
            assert fleet[figure] > 0
        rows = fleet["plans"]
        assert {(row["policy"], row["mode"], row["levels"]) for row in rows} == expected
        for row in rows:
            assert 0 < row["p50_ms"] <= row["p99_ms"]
            # A half-loaded fleet takes every request (a source pod resolves, a pinned node
            # exists, a set fits everywhere): the bench times plans that place.
            assert row["placed"] == row["requests"] == 10, row
