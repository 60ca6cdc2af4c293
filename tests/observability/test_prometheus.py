"""Every dashboard query against a real Prometheus scraping a real gsch under load.

An API, a worker and a binder run as separate processes, each with its own /metrics; a
Prometheus from Debian's `prometheus` package scrapes them with the shipped scrape config
(targets replaced by this test's ports); a short load of requests runs; then every panel's
query must return at least one series, every variable must have values, and every metric
and label a dashboard names must be one the processes actually export.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import pytest
import yaml

from gsch.client import publish_request
from gsch.eventstore.store import EventStore
from gsch.runtime.embedded import EmbeddedNats, free_port
from gsch.runtime.procs import ChildProcess, die_with_parent, serve_args, terminate
from tests.support.dashboards import exprs, shipped
from tests.support.fleet import FAST_ENV
from tests.support.pipeline import generated_levels, pod_request, wait_inventory
from tests.support.tools import prometheus_tool

CLUSTERS, NODES = 10, 4
# Stand-ins for what Grafana substitutes: a window of several 1 s scrapes, every member.
SUBSTITUTIONS = {"$__rate_interval": "20s", "$member_cluster": ".*"}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s", re.MULTILINE)
METRIC = re.compile(r"\bgsch_[a-z0-9_]+\b")


class Exported:
    """Sample names and their label names, from the /metrics text of every process."""

    def __init__(self, texts: list[str]) -> None:
        self.labels: dict[str, set[str]] = {}
        for text in texts:
            for name, labels in SAMPLE.findall(text):
                found = {pair.split("=", 1)[0] for pair in labels.split(",") if "=" in pair}
                self.labels.setdefault(name, set()).update(found)


# The housekeeper's metrics (snapshots, compaction, retention) are on the event-store
# dashboard: it runs in the API's process here, as `gsch serve` runs it by default.
_ROLES = {"api": "api,housekeeper"}


@pytest.fixture
async def fleet(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """API (with the housekeeper beside it, as in the default roles), worker and binder
    processes; their /metrics addresses by role."""
    env = {**FAST_ENV, "GSCH_SIMULATOR__BIND_FAILURE_RATE": "0.2",
           "GSCH_METRICS__REFRESH_INTERVAL": "0.5"}  # fmt: skip
    targets = {role: f"127.0.0.1:{free_port()}" for role in ("api", "worker", "binder")}
    extra = {
        "api": ["--api-listen", targets["api"]],
        "worker": ["--metrics-listen", targets["worker"]],
        "binder": ["--metrics-listen", targets["binder"],
                   "--generated-topology", f"{CLUSTERS}x{NODES}"],
    }  # fmt: skip
    children = [
        ChildProcess(serve_args(_ROLES.get(role, role), nats_server.url, tmp_path / role,
                                extra[role]),
                     tmp_path / f"{role}.log", env)
        for role in targets
    ]  # fmt: skip
    try:
        for child in children:
            await child.start()
        await wait_inventory(store, CLUSTERS * NODES)
        yield targets
    finally:
        for child in children:
            await child.stop()


@pytest.fixture
async def prometheus(fleet: dict[str, str], tmp_path: Path, repo_root: Path) -> AsyncIterator[str]:
    binary = prometheus_tool("prometheus")
    config = yaml.safe_load((repo_root / "config" / "prometheus" / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    # The shipped alert rules, loaded by a real Prometheus next to the live metrics.
    config["rule_files"] = [str(repo_root / "config" / "prometheus" / rule_file)
                            for rule_file in config["rule_files"]]  # fmt: skip
    for job in config["scrape_configs"]:
        role = job["job_name"].removeprefix("gsch-")
        for static in job["static_configs"]:
            static["targets"] = [fleet[role]] if role in fleet else []
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address={address}",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        url = f"http://{address}"
        await until_ok(f"{url}/-/ready", 60)
        yield url
    finally:
        await terminate(process, 10)


async def until_ok(url: str, timeout: float) -> str:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return await response.text()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


async def load(nats_server: EmbeddedNats, count: int) -> None:
    """Placeable requests over every cluster, and a few that intake rejects."""
    nc = await nats.connect(nats_server.url)
    try:
        for index in range(count):
            body = pod_request(f"load-{index}", generated_levels(index, CLUSTERS))
            await publish_request(nc, body, f"load-{index}")
            await asyncio.sleep(0.05)
        bad = msgspec.json.decode(pod_request("bad", [["x"]]))
        bad["workload"]["kind"] = "Foo"
        for index in range(3):
            bad["request_id"] = f"bad-{index}"
            await publish_request(nc, msgspec.json.encode(bad), bad["request_id"])
    finally:
        await nc.close()


async def query(session: aiohttp.ClientSession, url: str, expr: str) -> list[Any]:
    for name, value in SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    async with session.get(f"{url}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    result: list[Any] = body["data"]["result"]
    return result


async def test_every_panel_query_returns_series(
    nats_server: EmbeddedNats, fleet: dict[str, str], prometheus: str, repo_root: Path
) -> None:
    await load(nats_server, 120)
    boards = shipped(repo_root)
    pending = {(uid, expr) for uid, board in boards.items() for expr in exprs(board)}
    async with aiohttp.ClientSession() as session:
        # Scrapes come every second; bounded wait for every query to see data.
        for _ in range(60):
            for uid, expr in sorted(pending):
                if await query(session, prometheus, expr):
                    pending.discard((uid, expr))
            if not pending:
                break
            await asyncio.sleep(1)
        assert not pending, "panel queries without series:\n" + "\n".join(
            f"{uid}: {expr}" for uid, expr in sorted(pending)
        )
        for label, metric in [("member_cluster", "gsch_cluster_ready")]:
            async with session.get(
                f"{prometheus}/api/v1/label/{label}/values", params={"match[]": metric}
            ) as response:
                values = (await response.json())["data"]
            assert len(values) == CLUSTERS, values
        async with session.get(f"{prometheus}/api/v1/rules") as response:
            groups = (await response.json())["data"]["groups"]
        assert {group["name"] for group in groups} >= {"gsch-requests", "gsch-processes"}
        unhealthy = [rule for group in groups for rule in group["rules"]
                     if rule["health"] not in ("ok", "unknown")]  # fmt: skip
        assert not unhealthy, unhealthy
        async with session.get(f"{prometheus}/api/v1/targets") as response:
            targets = (await response.json())["data"]["activeTargets"]
        assert {t["labels"]["job"] for t in targets if t["health"] == "up"} == {
            "gsch-api", "gsch-worker", "gsch-binder"
        }  # fmt: skip
    texts = {role: await until_ok(f"http://{addr}/metrics", 30) for role, addr in fleet.items()}
    check_names(boards, texts)
    await promtool_check(texts)


def check_names(boards: dict[str, dict[str, Any]], texts: dict[str, str]) -> None:
    """Every metric and label a dashboard names is one the processes export (a renamed
    metric or label would otherwise leave a panel silently empty or a breakdown collapsed)."""
    for role, text in texts.items():
        assert "gsch_build_info{" in text, role  # every process exposes /metrics
    exported = Exported(list(texts.values()))
    for uid, board in boards.items():
        for expr in exprs(board):
            names = set(METRIC.findall(expr))
            assert names, expr
            for name in names:
                assert name in exported.labels, f"{uid}: {name} is not exported"
            known = set().union(*(exported.labels[name] for name in names)) | {"le", "instance"}
            used = set(re.findall(r"(\w+)\s*=~?\"", expr))
            for group in re.findall(r"by \(([^)]*)\)", expr):
                used |= {label.strip() for label in group.split(",")}
            assert used <= known, f"{uid}: labels {used - known} not exported in {expr}"


async def promtool_check(texts: dict[str, str]) -> None:
    """The exposition of every process follows Prometheus' naming rules."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool comes with the prometheus package"
    for role, text in texts.items():
        process = await asyncio.create_subprocess_exec(
            promtool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate(text.encode())
        assert process.returncode == 0, (role, output.decode())
