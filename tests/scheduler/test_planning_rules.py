"""Planning on live cluster state, through the real service: a frompod source resolved from the
pods the simulator reported, and projects restricted to their configured clusters, the same in
the dry run and in the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
import pytest

from gsch.client import publish_request
from gsch.runtime.config import ConfigError, load_config
from gsch.runtime.embedded import EmbeddedNats
from gsch.scheduler.rules import planner_rules
from tests.support.pipeline import get_json, make_config, post_json, running
from tests.support.waits import eventually


def from_camera(request_id: str, levels: list[Any], **extra: object) -> bytes:
    return msgspec.json.encode(
        {
            "request_id": request_id,
            "policy": "GLowLatencyPriority",
            "mode": "from_pod",  # GEdge UI's spelling
            "source": {"cluster": "edge-daejeon", "pod": "video/camera-1"},
            "select_clusters": levels,
            "workload": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": request_id},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            **extra,
        }
    )


async def test_frompod_and_projects_in_the_dry_run_and_the_worker(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    base = make_config(tmp_path, nats_server.url)
    config = load_config(
        None,
        {
            **msgspec.to_builtins(base),
            "projects": {"p1": {"clusters": ["edge-seoul"], "selectors": ["city=daejeon"]}},
        },
        environ={},
    )
    async with running(config, {"worker", "binder", "api"}) as service:
        # The camera runs on edge-daejeon-gpu: that node is 0 ms from it.
        status, answer = await post_json(
            f"{service.api_url}/v1/plan", from_camera("cam-1", [["edge-daejeon"]])
        )
        assert status == 200, answer
        assert answer["placements"] == [
            {"cluster": "edge-daejeon", "node": "edge-daejeon-gpu", "amount": {"pods": 1}}
        ]
        (level,) = answer["explanation"]["levels"]  # type: ignore[index]
        assert (
            level["notes"]["note 1"]
            == "source pod video/camera-1 runs on edge-daejeon/edge-daejeon-gpu"
        )

        # Project p1 may use edge-seoul and the daejeon clusters, not cloud-kr or edge-busan.
        levels = [["cloud-kr", "edge-busan"], ["edge-seoul", "near-daejeon-1"]]
        status, answer = await post_json(
            f"{service.api_url}/v1/plan", from_camera("cam-2", levels, project_name="p1")
        )
        assert status == 200, answer
        first, second = answer["explanation"]["levels"]  # type: ignore[index]
        assert first["rejections"] == {
            "cloud-kr": ["not allowed for project p1"],
            "edge-busan": ["not allowed for project p1"],
        }
        assert second["used"] is True
        dry = answer["placements"]

        # A project that is not configured has no clusters.
        status, answer = await post_json(
            f"{service.api_url}/v1/plan", from_camera("cam-3", levels, project_name="p9")
        )
        assert answer["placed"] is False

        # The worker decides what the dry run said, and the API shows its explanation.
        nc = await nats.connect(nats_server.url)
        await publish_request(nc, from_camera("cam-2", levels, project_name="p1"), "cam-2")
        await nc.close()
        url = f"{service.api_url}/v1/requests/cam-2"

        async def settled() -> bool:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                # 404 until the projection has the request.
                return response.status == 200 and (await response.json())["state"] in (
                    "bound",
                    "failed",
                )

        await eventually(settled)
        body = await get_json(url)
        assert body["state"] == "bound"
        placement = body["placement"]
        assert isinstance(placement, dict)
        assert isinstance(dry, list)
        assert [{"cluster": placement["cluster"], "node": placement["node"]}] == [
            {"cluster": p["cluster"], "node": p["node"]} for p in dry
        ]
        explained = body["explanation"]
        assert isinstance(explained, dict)
        # (False is left out of the JSON, like every default.)
        assert [level.get("used", False) for level in explained["levels"]] == [False, True]


def test_planner_rules_come_from_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "gsch.toml"
    path.write_text(
        "[planner]\nmax_latency_age = 90\n"
        '[projects.p1]\nclusters = ["c1"]\nselectors = ["tier=edge&region=kr"]\n'
    )
    rules = planner_rules(load_config(path, environ={}))
    assert rules.max_latency_age == 90
    assert rules.projects["p1"].allows("c1", {})
    assert rules.projects["p1"].allows("e9", {"tier": "edge", "region": "kr", "x": "y"})
    assert not rules.projects["p1"].allows("e9", {"tier": "edge"})
    broken = load_config(None, {"projects": {"p1": {"selectors": ["tier"]}}}, environ={})
    with pytest.raises(ConfigError, match=r"projects\.p1\.selectors: 'tier' is not key=value"):
        planner_rules(broken)
