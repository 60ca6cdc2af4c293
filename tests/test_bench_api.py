"""`gsch bench --api-reads` reads through a plan flood and reports both phases."""

from __future__ import annotations

import json
import subprocess
import sys


def test_api_reads_bench_reports_both_phases_and_the_plans() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "bench", "--api-reads", "--clusters", "20",
         "--nodes-per-cluster", "2", "--seconds", "1", "--plan-clients", "2", "-o", "json"],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    report = json.loads(result.stdout)
    for phase in ("reads_without_plans", "reads_while_plans_flood"):
        assert report[phase]["reads"] > 0
        assert 0 < report[phase]["p50_ms"] <= report[phase]["p99_ms"] <= report[phase]["max_ms"]
    assert report["plans_by_status"].get("200", 0) > 0
    assert set(report["plans_by_status"]) <= {"200", "503"}
