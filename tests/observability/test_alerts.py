"""The alert rules in config/prometheus/: valid for Prometheus, each one unit-tested with
`promtool test rules`, built on metrics gsch exports, and documented in the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import gsch.metrics  # noqa: F401 - registers every gsch metric
from tests.support.tools import prometheus_tool

# Named by rules before the code that exports them lands.
NOT_YET_EXPORTED: set[str] = set()
METRIC = re.compile(r"\bgsch_[a-z0-9_]+\b")


def rules(repo_root: Path) -> list[dict[str, Any]]:
    text = (repo_root / "config" / "prometheus" / "alerts.yml").read_text()
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def run_promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [prometheus_tool("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_are_valid_and_their_unit_tests_pass(repo_root: Path) -> None:
    folder = repo_root / "config" / "prometheus"
    assert f"SUCCESS: {len(rules(repo_root))} rules found" in run_promtool(
        "check", "rules", "alerts.yml", cwd=folder
    )
    assert "SUCCESS" in run_promtool("test", "rules", "alerts-test.yml", cwd=folder)


def test_every_alert_has_a_test_that_makes_it_fire(repo_root: Path) -> None:
    tests = yaml.safe_load((repo_root / "config" / "prometheus" / "alerts-test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    names = [rule["alert"] for rule in rules(repo_root)]
    assert len(set(names)) == len(names), "alert names must be unique"
    assert set(names) == fired, f"alerts never seen firing in a test: {set(names) - fired}"


def test_every_alert_says_how_bad_and_what_to_do(repo_root: Path) -> None:
    for rule in rules(repo_root):
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[mh]", rule["for"]), rule["alert"]  # no alert on one blip


def test_rules_use_metrics_gsch_exports(repo_root: Path) -> None:
    # prometheus_client names a counter's family without `_total`, a histogram's without
    # `_count`/`_sum`/`_bucket`; series of labelled metrics exist only once observed.
    families = {family.name for family in REGISTRY.collect()}
    for rule in rules(repo_root):
        for name in METRIC.findall(rule["expr"]):
            family = re.sub(r"_(total|count|sum|bucket)$", "", name)
            assert family in families or name in NOT_YET_EXPORTED, (rule["alert"], name)


def test_the_readme_lists_every_alert_with_what_to_do(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    section = readme.split("\n### Alerts", 1)[1].split("\n## ", 1)[0]
    for rule in rules(repo_root):
        assert f"`{rule['alert']}`" in section, f"README does not list {rule['alert']}"
