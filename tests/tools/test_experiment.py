"""`gsch experiment`: the scenario file, the request bodies, and a small run through the real
pipeline (embedded nats-server, a worker process, the simulator) on the seed's test bed."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gsch.paths import shipped
from gsch.tools.experiment.pipeline import Outcome
from gsch.tools.experiment.report import as_json, assumptions, sweep_table, table, write_chart
from gsch.tools.experiment.runner import run_experiment, sample
from gsch.tools.experiment.scenario import ScenarioError, load, poisson_offsets, request_body
from tests.support.intake import accepted

SEED_TOPOLOGY = shipped("config") / "topology-seed.toml"


def scenario_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(f'topology = "{SEED_TOPOLOGY}"\nlevels = [["edge-a", "edge-b"]]\n' + body)
    return path


SMALL = """
time_scale = 0.005
workers = 1
[seed_result]
without_low_latency = 115.1
with_low_latency = 98.4
[[policies]]
name = "low latency"
policy = "GLowLatencyPriority"
[[policies]]
name = "name order"
policy = "name-order"
[[scenarios]]
name = "one video"
arrivals = "one-at-a-time"
videos = 2
[sweep]
scenario = "one video"
far_cluster = "edge-a"
far_ms = []
"""


def test_the_shipped_scenario_loads_and_its_requests_pass_intake() -> None:
    scenario = load(shipped("config") / "experiment-seed.toml")
    assert scenario.source == ("master", "master")
    assert scenario.alone(scenario.topology, "edge-b") == pytest.approx(98.4)
    assert scenario.alone(scenario.with_far_ms(10.0), "edge-a") == pytest.approx(135.975)
    chooser = random.Random(1)
    for policy in scenario.spec.policies:
        request = accepted(request_body(scenario, policy, "x001-000", chooser))
        assert request.demand.cpu_m == 8000
        assert {c for level in request.levels for c in level} == {"edge-a", "edge-b"}
    poisson = next(p for p in scenario.spec.scenarios if p.arrivals == "poisson")
    assert poisson_offsets(poisson, 17) == poisson_offsets(poisson, 17)
    assert poisson_offsets(poisson, 17) != poisson_offsets(poisson, 18)
    assert any("calibrated on the seed's two totals" in line for line in assumptions(scenario))


@pytest.mark.parametrize(
    ("before", "after", "problem"),
    [
        ("", '[[policies]]\nname = "x"\npolicy = "GFastest"\n', "unknown policy 'GFastest'"),
        ("time_scale = 2.0\n", "", "time_scale must be in (0, 1]"),
        ('seed = "x"\n', "", "Expected `int`, got `str` - at `$.seed`"),
    ],
)
def test_a_bad_scenario_is_refused_with_the_reason(
    tmp_path: Path, before: str, after: str, problem: str
) -> None:
    base = SMALL.replace("time_scale = 0.005\n", "")
    with pytest.raises(ScenarioError, match=re.escape(problem)):
        load(scenario_file(tmp_path, before + base + after))


def test_waiting_and_running_are_modelled_time_and_placing_is_not() -> None:
    quick = Outcome(published_at=100.0, bound_at=100.02, finished_at=101.02)
    found = sample(quick, 0.01)
    assert found is not None
    assert found.response == pytest.approx(0.02 + 100.0)
    waited = Outcome(published_at=100.0, bound_at=100.5, finished_at=101.5, waited=True)
    found = sample(waited, 0.01)
    assert found is not None
    assert found.response == pytest.approx(50.0 + 100.0)
    assert sample(Outcome(published_at=1.0), 0.01) is None


async def test_the_seed_setting_through_the_pipeline(tmp_path: Path) -> None:
    """One video at a time: the low-latency policy runs it on the 1 ms cluster in the seed's
    98.4 s, the old name order on the 5 ms one in 115.1 s (plus gsch's own milliseconds)."""
    scenario = load(scenario_file(tmp_path, SMALL))
    results = await run_experiment(scenario, tmp_path / "run", quick=False, say=lambda _: None)
    by_policy = {r.policy: r for r in results}
    near, far = by_policy["low latency"], by_policy["name order"]
    assert (near.share_on("edge-b"), far.share_on("edge-a")) == (1.0, 1.0)
    assert near.mean == pytest.approx(98.4, abs=5.0)
    assert far.mean == pytest.approx(115.1, abs=5.0)
    assert near.failed == far.failed == 0
    lines = table(scenario, results)
    assert any(line.startswith("one video") and "low latency" in line for line in lines)
    assert sweep_table(scenario, results)[1].startswith("     5ms")
    assert as_json(scenario, results)["results"][0]["by_cluster"] == {"edge-b": 1.0}
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib (gsch[experiment])")
    assert write_chart(scenario, results, tmp_path / "chart.png") is None
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
