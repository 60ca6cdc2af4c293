"""`gsch bench --plan-only` measures the planner per fleet size and level shape."""

from __future__ import annotations

import json
import subprocess
import sys


def test_plan_only_bench_reports_every_case() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "bench", "--plan-only", "--fleet-sizes", "20", "50",
         "--nodes-per-cluster", "4", "--plan-requests", "20", "-o", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    cases = {(row["clusters"], row["levels"]) for row in report["plan_only"]}
    assert cases == {(20, "names"), (20, "selectors"), (50, "names"), (50, "selectors")}
    for row in report["plan_only"]:
        assert 0 < row["p50_ms"] <= row["p99_ms"]
