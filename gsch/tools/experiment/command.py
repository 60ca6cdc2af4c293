"""`gsch experiment [FILE]`: run the scenario, print the assumptions and the table, write
the chart."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from gsch.logs import setup_logging
from gsch.tools.experiment.report import (
    as_json,
    assumptions,
    sweep_table,
    table,
    write_chart,
)
from gsch.tools.experiment.runner import run_experiment
from gsch.tools.experiment.scenario import ScenarioError, load


def default_scenario() -> Path:
    from gsch.paths import shipped

    return shipped("config") / "experiment-seed.toml"


async def run(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    try:
        scenario = load(args.scenario or default_scenario())
    except ScenarioError as exc:
        print(f"gsch experiment: {exc}", file=sys.stderr)
        return 2
    if args.time_scale is not None:
        spec = scenario.spec
        spec.time_scale = args.time_scale
    quiet = args.output == "json"

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    say(f"gsch experiment: {scenario.path}")
    say("assumptions:")
    for line in assumptions(scenario):
        say(f"  - {line}")
    data_root = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-experiment-"))
    say(f"running (data in {data_root}):")
    results = await run_experiment(scenario, data_root, args.quick, say)
    chart = Path(args.chart)
    problem = write_chart(scenario, results, chart)
    if quiet:
        print(
            json.dumps(
                {**as_json(scenario, results), "chart": None if problem else str(chart)}, indent=2
            )
        )
    else:
        say("")
        for line in table(scenario, results):
            say(line)
        lines = sweep_table(scenario, results)
        if lines:
            say("")
            say("sweep of the far round trip (mean s per video, one video at a time):")
            for line in lines:
                say(line)
        if problem is None:
            say(f"chart: {chart}")
    if problem is not None:
        print(f"gsch experiment: {problem}", file=sys.stderr)
    failed = sum(r.failed for r in results)
    if failed:
        print(f"gsch experiment: {failed} video(s) did not finish", file=sys.stderr)
    return 1 if failed else 0
