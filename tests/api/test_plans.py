"""POST /v1/plan on a live gsch: it needs a token, runs in a planner process of its own, and
cannot freeze the API: a flood beyond the bounds is refused at once, a frozen planner is
stopped and replaced, and reads are answered meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from gsch.api.auth import Tokens
from gsch.api.planners import PlanLimits, PlannerPool
from gsch.eventstore.store import EventStore
from gsch.runtime.config import Config
from tests.support.api import app_over
from tests.support.live import PLAN_TIMEOUT, TOKEN, Live, planner_pids
from tests.support.pipeline import pod_request
from tests.support.waits import eventually

REQUEST = pod_request("plan-1", [["tier=near-edge"], "tier=edge"])


async def test_plans_need_the_plan_or_the_write_token(live: Live) -> None:
    for token, status in [(None, 401), ("wrong", 401), (TOKEN, 200)]:
        code, body = await live.plan(REQUEST, token=token)
        assert code == status, body
    code, body = await live.plan(REQUEST)  # the plan token
    assert code == 200, body
    assert body["placed"] is True
    assert body["placements"][0]["cluster"].startswith("near-")


async def test_plans_are_refused_when_no_token_is_configured(
    store: EventStore, tmp_path: Path
) -> None:
    never_started = PlannerPool(Config(), "nats://127.0.0.1:1", "test", PlanLimits())
    async with app_over(
        store, tmp_path / "m.sqlite", tokens=Tokens(), planner=never_started
    ) as client:
        response = await client.post(
            "/v1/plan", data=REQUEST, headers={"Authorization": "Bearer x"}
        )
        body = await response.json()
    assert response.status == 403
    assert "planning is disabled" in body["error"]["reason"]


async def test_bad_plans_are_refused_with_the_field(live: Live) -> None:
    code, body = await live.plan(b"[" * 100_000 + b"]" * 100_000)
    assert code == 400, body
    assert body["error"]["field"] == "body"
    code, body = await live.plan(b'{"policy": "GMostRequestedPriority"}')
    assert code == 422, body
    assert body["error"] == {
        "reason": "request would be rejected: workload: is required",
        "field": "workload",
    }


async def test_a_frozen_planner_bounds_the_flood_and_is_replaced(live: Live) -> None:
    assert (await live.plan(REQUEST))[0] == 200
    (frozen,) = planner_pids()
    os.kill(frozen, signal.SIGSTOP)  # a plan that never ends, as a hostile one would
    try:
        running = asyncio.create_task(live.plan(REQUEST))  # the planner's one job
        await asyncio.sleep(0.2)
        waiting = asyncio.create_task(live.plan(REQUEST))  # the one place in the queue
        await asyncio.sleep(0.2)
        code, refused = await live.plan(REQUEST)  # beyond the bounds: at once
        assert code == 503, refused
        assert "the planner is busy" in refused["error"]["reason"]
        for path in ("/v1/requests", "/v1/clusters", "/readyz"):  # reads go on
            assert (await live.get(path))[0] == 200
        code, stopped = await running
        assert code == 503, stopped
        assert "longer than api.plan_timeout" in stopped["error"]["reason"]
        assert (await waiting)[0] in (200, 503)  # served by the replacement, if it is quick
    finally:
        if frozen in planner_pids():
            os.kill(frozen, signal.SIGCONT)

    async def replaced() -> bool:
        return (await live.plan(REQUEST))[0] == 200

    await eventually(replaced, timeout=30 + PLAN_TIMEOUT)
    assert frozen not in planner_pids()


async def test_a_planner_that_dies_is_replaced(live: Live) -> None:
    assert (await live.plan(REQUEST))[0] == 200
    (first,) = planner_pids()
    os.kill(first, signal.SIGKILL)

    async def replaced() -> bool:
        return (await live.plan(REQUEST))[0] == 200 and planner_pids() not in ([], [first])

    await eventually(replaced, timeout=30)


async def test_gsch_plan_sends_the_plan_token(live: Live, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_bytes(REQUEST)
    token = tmp_path / "plan-token"  # written by the live fixture
    command = [sys.executable, "-m", "gsch", "plan", str(request), "--api", live.url, "-o", "json"]
    without = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, error = await without.communicate()
    assert without.returncode == 1
    assert b"401: this endpoint needs the plan (or write) token" in error
    planned = await asyncio.create_subprocess_exec(
        *command, "--token-file", str(token), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await planned.communicate()
    assert planned.returncode == 0, output
    assert json.loads(output)["placed"] is True
