"""`gsch bench` runs the scheduler end to end and reports what an operator compares: rates,
latency percentiles, conflicts, CPU per process, the raw publish rate, and the audit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gsch.tools.bench import _next_rate
from gsch.tools.bench_load import latency_ms, percentile


def test_a_sweep_runs_open_loops_at_rising_rates_and_reports_each(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "bench", "--sweep", "--rate", "20", "--duration", "1.5",
         "--sweep-steps", "2", "--workers", "2", "--clusters", "4", "--nodes-per-cluster", "3",
         "--raw-messages", "200", "--data-dir", str(tmp_path), "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "sweep"
    assert report["audit_ok"] is True
    assert report["raw_publish_per_second"] > 0
    first, second = report["steps"]
    assert first["offered_rate"] == 20
    # Met the target: 1.5x; missed it: back down (this machine's load decides which).
    assert second["offered_rate"] in (30, round(20 / 1.5, 1))
    for step in report["steps"]:
        expected = round(step["offered_rate"] * 1.5)
        assert step["requests"] == step["scheduled"] == step["bound"] == expected
        for kind in ("publish_to_scheduled_ms", "publish_to_bound_ms"):
            shown = step[kind]
            assert 0 < shown["p50"] <= shown["p95"] <= shown["p99"] <= shown["max"]
        assert step["publish_to_scheduled_ms"]["p50"] <= step["publish_to_bound_ms"]["p50"]
        assert set(step["cpu"]["cpu_seconds"]) == {
            "nats-server", "binder", "worker-0", "worker-1", "bench",
        }  # fmt: skip
        assert step["achieved_publish_rate"] > 0
        # Every placement is one decision of a worker's group committer, sent in some batch.
        groups = step["group_commit"]
        assert groups["decisions"] >= step["scheduled"]
        assert 1 <= groups["batches"] <= groups["decisions"]
        assert groups["round_trip_ms"] > 0
        # Each placement: a request published, its events appended, acknowledgements.
        messages = step["messages_per_placement"]
        assert messages["server_received"] >= 5
        assert set(messages["by_process"]) == {"binder", "worker-0", "worker-1", "bench"}
        assert messages["by_process"]["bench"]["sent"] >= 1
    passed = [
        s["offered_rate"]
        for s in report["steps"]
        if s["publish_to_scheduled_ms"]["p99"] <= 50
        and s["achieved_publish_rate"] >= 0.95 * s["offered_rate"]
    ]
    assert report["highest_rate_within_target"] == (max(passed) if passed else None)


def test_the_sweep_grows_until_a_miss_then_bisects() -> None:
    assert _next_rate(200.0, None, 1.5) == 300.0
    assert _next_rate(None, 200.0, 2.0) == 100.0
    assert _next_rate(300.0, 450.0, 1.5) == 375.0


@pytest.mark.parametrize(
    ("share", "expected"), [(0.50, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.0, 1)]
)
def test_percentiles_are_nearest_rank(share: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, share) == expected


def test_latencies_are_shown_in_milliseconds() -> None:
    assert latency_ms([0.010, 0.020, 0.030]) == {"p50": 20.0, "p95": 30.0, "p99": 30.0, "max": 30.0}
    assert latency_ms([]) == {"p50": None, "p95": None, "p99": None, "max": None}
