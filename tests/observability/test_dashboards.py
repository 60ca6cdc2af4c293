"""Structure of the shipped dashboards, provisioning and scrape files (no Prometheus needed).

The live check of every query against a real Prometheus is in test_prometheus.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gsch.runtime.service import ROLES
from gsch.tools import dashboards
from tests.support.dashboards import exprs, shipped

RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|delta|deriv|[a-z]+_over_time)\(")
WINDOW = re.compile(r"\[([^\]]*)\]")


def test_the_committed_json_is_what_the_code_generates(repo_root: Path) -> None:
    folder = repo_root / "config" / "grafana" / "dashboards"
    assert {p.stem for p in folder.glob("*.json")} == set(dashboards.DASHBOARDS)
    for uid in dashboards.DASHBOARDS:
        assert (folder / f"{uid}.json").read_text() == dashboards.render(uid), (
            f"{uid}.json is stale: run python -m gsch.tools.dashboards"
        )


def test_uids_titles_and_schema(repo_root: Path) -> None:
    boards = shipped(repo_root)
    assert {"gsch-overview", "gsch-clusters", "gsch-event-store"} <= set(boards)
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        assert board["uid"] == name  # file name = uid: provisioning overwrites cleanly
        assert len(board["uid"]) <= 40
        assert board["schemaVersion"] == dashboards.SCHEMA_VERSION
        assert board["id"] is None
        assert "__inputs" not in board
        assert board["title"].startswith("gsch / ")


def test_variables_and_datasources(repo_root: Path) -> None:
    for name, board in shipped(repo_root).items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        member = variables["member_cluster"]
        assert member["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert member["query"] == "label_values(gsch_cluster_ready, member_cluster)"
        assert (member["includeAll"], member["multi"], member["allValue"]) == (True, True, ".*")
        for panel in board["panels"]:
            where = f"{name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["description"], where
            assert panel["fieldConfig"]["defaults"]["unit"], where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where


def test_every_range_uses_the_rate_interval(repo_root: Path) -> None:
    for name, board in shipped(repo_root).items():
        for expr in exprs(board):
            windows = WINDOW.findall(expr)
            assert all(window == "$__rate_interval" for window in windows), (name, expr)
            assert len(windows) == len(RANGE_FUNCTIONS.findall(expr)), (name, expr)


def test_member_clusters_are_never_called_cluster(repo_root: Path) -> None:
    for board in shipped(repo_root).values():
        for expr in exprs(board):
            assert not re.search(r"\bcluster\b", expr.replace("member_cluster", "")), expr


def test_provisioning_files(repo_root: Path) -> None:
    provisioning = repo_root / "config" / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["type"], source["uid"]) == ("prometheus", "prometheus")
    providers = yaml.safe_load((provisioning / "dashboards" / "gsch.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
    scrape = yaml.safe_load((repo_root / "config" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    assert {f"gsch-{role}" for role in (*ROLES, "agent")} <= jobs
    # $__rate_interval is computed from the datasource's timeInterval: it must be the real one.
    assert source["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


@pytest.mark.parametrize("uid", sorted(dashboards.DASHBOARDS))
def test_panels_do_not_overlap(uid: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboards.dashboard(uid)["panels"]:
        grid = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        assert grid["x"] + grid["w"] <= 24
        taken |= cells
