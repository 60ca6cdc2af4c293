"""The HTTP read API over a real projection of a real log, through a real socket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gsch.api.app import make_app
from gsch.eventstore.store import EventStore
from gsch.metrics import HTTP_REQUESTS
from gsch.model.request import Policy
from gsch.projections.projector import Projector, rebuild
from gsch.runtime.config import ApiConfig
from tests.support.api import SEQ, Api
from tests.support.scenario import GI, Log, running, serving, write_scenario


async def test_a_bound_request(api: Api) -> None:
    body = await api.get("/v1/requests/req-bound")
    assert body == {
        "id": "req-bound",
        "state": "bound",
        "finished": False,
        "final": False,  # a bound request can still be cancelled
        "policy": "GMostRequestedPriority",
        "mode": "default",
        "form": "native",
        "level": "base",
        "project": "p1",
        "workspace": "w1",
        "user": "u1",
        "fast": False,
        "attempts": 1,
        "placement": {"cluster": "c1", "node": "n1"},
        "placements": [{"cluster": "c1", "node": "n1"}],
        "reason": None,
        "reason_field": None,
        "submitted_at": body["submitted_at"],
        "updated_at": body["updated_at"],
        "submitted_seq": body["submitted_seq"],
        "last_seq": body["last_seq"],
        "not_before": None,
        "explanation": {
            "levels": [
                {"index": 0, "candidates": ["c1", "c2"], "scores": {"c1": 80.0}, "chosen": "c1"}
            ],
            "summary": "placed on c1/n1",
        },
        "sequence": api.last,
    }
    assert body["submitted_at"] < body["updated_at"]
    assert body["submitted_seq"] < body["last_seq"] <= api.last


async def test_rejected_and_requeued_requests(api: Api) -> None:
    rejected = await api.get("/v1/requests/req-rejected")
    assert rejected["state"] == "rejected"
    assert rejected["final"] is True
    assert rejected["finished"] is False  # no workload ever ran
    assert rejected["reason"] == "workload.kind: 'Foo' is not an allowed kind"
    assert rejected["reason_field"] == "workload"
    assert rejected["submitted_at"] is not None
    requeued = await api.get("/v1/requests/req-requeued")
    assert (requeued["state"], requeued["attempts"]) == ("queued", 2)
    assert (requeued["placement"], requeued["placements"]) == (None, [])
    assert requeued["reason"] == "binding failed: timeout"
    assert requeued["policy"] == "GLowLatencyPriority"
    assert requeued["not_before"] is not None


async def test_request_events_in_order(api: Api) -> None:
    body = await api.get("/v1/requests/req-bound/events")
    assert body["request_id"] == "req-bound"
    items = body["items"]
    assert [i["type"] for i in items] == [
        "RequestAccepted", "RequestClaimed", "PlacementCommitted", "RequestBound"
    ]  # fmt: skip
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
    assert all(i["event"]["type"] == i["type"] and i["event"]["at"] == i["at"] for i in items)
    assert items[0]["event"]["request"]["request_id"] == "req-bound"


async def test_clusters_and_nodes(api: Api) -> None:
    listing = await api.get("/v1/clusters")
    assert [c["name"] for c in listing["items"]] == ["c1", "c2"]
    c1 = await api.get("/v1/clusters/c1")
    assert c1 == {**listing["items"][0], "sequence": api.last}
    assert (c1["tier"], c1["labels"], c1["ready"], c1["declared"]) == (
        "edge", {"region": "r-c1"}, True, True
    )  # fmt: skip
    assert (c1["nodes"], c1["ready_nodes"]) == (2, 1)
    assert c1["allocatable"] == {"cpu_m": 8000, "memory": 16 * GI, "gpu": 0, "pods": 220}
    assert c1["reserved"] == {"cpu_m": 500, "memory": GI, "gpu": 0, "pods": 1}
    assert c1["free"] == {
        "cpu_m": 8000 - 100 - 500, "memory": 16 * GI - GI // 2 - GI, "gpu": 0, "pods": 216
    }  # fmt: skip
    nodes = await api.get("/v1/clusters/c1/nodes")
    assert nodes["cluster"] == "c1"
    n1, n2 = nodes["items"]
    assert n1 == {
        "cluster": "c1",
        "name": "n1",
        "declared": True,
        "ready": True,
        "allocatable": {"cpu_m": 4000, "memory": 8 * GI, "gpu": 0, "pods": 110},
        "foreign": {"cpu_m": 100, "memory": GI // 2, "gpu": 0, "pods": 3},
        "reserved": {"cpu_m": 500, "memory": GI, "gpu": 0, "pods": 1},
        "free": {"cpu_m": 3400, "memory": 8 * GI - GI // 2 - GI, "gpu": 0, "pods": 106},
        "reservations": 1,
        "labels": {"kubernetes.io/hostname": "n1"},
        "taints": [],
    }
    assert (n2["ready"], n2["taints"]) == (
        False, [{"key": "dedicated", "effect": "NoSchedule", "value": "edge"}]
    )  # fmt: skip
    c2 = await api.get("/v1/clusters/c2/nodes")
    (c2n1,) = c2["items"]
    assert (c2n1["ready"], c2n1["allocatable"]["cpu_m"]) == (True, 8000)
    assert c2n1["reserved"] == {"cpu_m": 0, "memory": 0, "gpu": 0, "pods": 0}
    assert c2n1["reservations"] == 0  # released by the requeue
    assert listing["items"][1]["ready"] is True


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["req-bound", "req-rejected", "req-requeued", "req-queued"]),
        ("?state=queued", ["req-requeued", "req-queued"]),
        ("?state=bound,rejected", ["req-bound", "req-rejected"]),
        ("?state=bound&state=rejected", ["req-bound", "req-rejected"]),
        ("?policy=GMostRequestPriority", ["req-bound"]),  # an alias, normalised
        ("?policy=GLowLatencyPriority", ["req-requeued"]),
        ("?cluster=c1", ["req-bound"]),
        ("?cluster=c2", []),  # the requeue took req-requeued off c2
        ("?project=p2", ["req-requeued"]),
        ("?project=p1&state=queued", ["req-queued"]),
        ("?state=failed", []),
    ],
)
async def test_filters(api: Api, query: str, expected: list[str]) -> None:
    body = await api.get(f"/v1/requests{query}")
    assert [item["id"] for item in body["items"]] == expected
    assert body["continue"] is None
    assert "explanation" not in (body["items"] or [{}])[0]


async def test_pages_are_stable_while_the_log_grows(api: Api) -> None:
    log = api.log
    for i in range(5):
        appended = await log.accept(f"extra-{i}", project="p9")
    seen: list[str] = []
    body = await api.get(f"/v1/requests?limit=3&min_seq={appended}")
    seen += [item["id"] for item in body["items"]]
    assert seen == ["req-bound", "req-rejected", "req-requeued"]
    # Between pages: new requests arrive and some on both sides of the boundary move on.
    await log.claim("req-queued", attempt=1)
    await log.claim("req-requeued", attempt=2)
    await log.accept("late-1")
    last = await log.accept("late-2")
    while body["continue"] is not None:
        body = await api.get(f"/v1/requests?limit=3&continue={body['continue']}&min_seq={last}")
        seen += [item["id"] for item in body["items"]]
    assert seen == [
        "req-bound", "req-rejected", "req-requeued", "req-queued",
        *(f"extra-{i}" for i in range(5)), "late-1", "late-2",
    ]  # fmt: skip
    filtered = await api.get("/v1/requests?project=p9&limit=2")
    assert [i["id"] for i in filtered["items"]] == ["extra-0", "extra-1"]
    rest = await api.get(f"/v1/requests?project=p9&limit=2&continue={filtered['continue']}")
    assert [i["id"] for i in rest["items"]] == ["extra-2", "extra-3"]


async def test_min_seq_waits_for_the_projection(api: Api) -> None:
    target = api.last + 1
    waiting = asyncio.create_task(api.client.get(f"/v1/requests/late?min_seq={target}"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    assert await api.log.accept("late") == target
    response = await waiting
    body = await response.json()
    assert response.status == 200, body
    assert body["state"] == "queued"
    assert body["sequence"] >= target


async def test_min_seq_out_of_reach_answers_stale_with_a_flag(api: Api) -> None:
    started = asyncio.get_running_loop().time()
    response = await api.client.get(f"/v1/clusters?min_seq={api.last + 100}")
    body = await response.json()
    assert response.status == 200, body
    assert 1.9 <= asyncio.get_running_loop().time() - started < 6
    assert response.headers["X-Gsch-Stale"] == "true"
    assert body["sequence"] == api.last < api.last + 100
    missing = await api.client.get(f"/v1/requests/later?min_seq={api.last + 100}")
    reason = (await missing.json())["error"]["reason"]
    assert missing.status == 404
    assert missing.headers["X-Gsch-Stale"] == "true"
    assert f"had not reached min_seq {api.last + 100}" in reason
    fresh = await api.client.get(f"/v1/clusters?min_seq={api.last}")
    assert "X-Gsch-Stale" not in fresh.headers


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v1/requests/nope", 404, "no request 'nope'"),
        ("/v1/requests/nope/events", 404, "no request 'nope'"),
        ("/v1/clusters/nope", 404, "no cluster 'nope'"),
        ("/v1/clusters/nope/nodes", 404, "no cluster 'nope'"),
        ("/v1/nothing-here", 404, "no such resource"),
        ("/v1/requests?state=sleeping", 400, "'state': unknown value 'sleeping'"),
        ("/v1/requests?policy=GFastest", 400, "'policy': unknown value 'GFastest'"),
        ("/v1/requests?limit=0", 400, "'limit' must be between 1 and 1000"),
        ("/v1/requests?limit=1001", 400, "'limit' must be between 1 and 1000"),
        ("/v1/requests?limit=ten", 400, "'limit' must be an integer"),
        ("/v1/requests?limit=1&limit=2", 400, "'limit' given 2 times"),
        ("/v1/requests?continue=%%%", 400, "'continue' is not a token"),
        ("/v1/requests?continue=eyJ4IjoxfQ", 400, "'continue' is not a token"),
        ("/v1/requests?state=", 400, "'state' has an empty value"),
        ("/v1/requests?stat=queued", 400, "unknown query parameter 'stat'"),
        ("/v1/clusters?verbose=1", 400, "unknown query parameter 'verbose'"),
        ("/v1/clusters?min_seq=-1", 400, "'min_seq' must be between 0"),
        ("/v1/clusters?min_seq=1e3", 400, "'min_seq' must be an integer"),
    ],
)
async def test_errors_are_json_with_a_reason(api: Api, path: str, status: int, words: str) -> None:
    body = await api.get(path, status=status)
    assert words in body["error"]["reason"]
    assert body["sequence"] == api.last


async def test_method_not_allowed_is_json(api: Api) -> None:
    response = await api.client.post("/v1/clusters", json={})
    body = await response.json()
    assert response.status == 405
    assert "method POST not allowed" in body["error"]["reason"]
    assert "GET" in response.headers["Allow"]


async def test_health_and_metrics(api: Api) -> None:
    assert (await api.get("/livez"))["status"] == "ok"
    ready = await api.get("/readyz")
    assert ready == {
        "ready": True, "reason": None, "stream_sequence": api.last, "sequence": api.last
    }  # fmt: skip
    route = HTTP_REQUESTS.labels(route="/v1/requests/{id}", method="GET", code="404")
    before = route._value.get()
    await api.get("/v1/requests/a", status=404)
    await api.get("/v1/requests/b", status=404)
    assert route._value.get() == before + 2
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    assert 'gsch_http_requests_total{code="404",method="GET",route="/v1/requests/{id}"}' in text
    assert f"gsch_projection_last_applied_sequence {float(api.last)}" in text
    assert "/v1/requests/a" not in text


async def test_not_ready_until_caught_up(store: EventStore, tmp_path: Path) -> None:
    last = await write_scenario(Log(store))
    projector = Projector(store, tmp_path / "model.sqlite")
    await projector.open()
    try:
        async with serving(make_app(projector)) as client:
            response = await client.get("/readyz")
            body = await response.json()
            assert response.status == 503, body
            assert body["ready"] is False
            assert "not caught up" in body["reason"]
            assert (await client.get("/livez")).status == 200
            stop = asyncio.Event()
            task = asyncio.create_task(projector.run(stop))
            assert await projector.wait_for(last, 10)
            assert (await client.get("/readyz")).status == 200
            stop.set()
            await task
            # Ready once means ready: lag is a metric, not unreadiness.
            await Log(store).cluster("c9", "cloud")
            assert (await client.get("/readyz")).status == 200
    finally:
        await projector.close()


ENDPOINTS = [
    "/v1/requests",
    "/v1/requests?limit=2",
    "/v1/requests?state=queued",
    "/v1/requests?cluster=c1",
    "/v1/requests?policy=GLowLatencyPriority&project=p2",
    "/v1/requests/req-bound",
    "/v1/requests/req-rejected",
    "/v1/requests/req-requeued",
    "/v1/requests/req-queued",
    "/v1/requests/req-bound/events",
    "/v1/requests/req-rejected/events",
    "/v1/requests/req-requeued/events",
    "/v1/requests/req-queued/events",
    "/v1/requests/missing",
    "/v1/clusters",
    "/v1/clusters/c1",
    "/v1/clusters/c2",
    "/v1/clusters/c1/nodes",
    "/v1/clusters/c2/nodes",
    "/v1/clusters/missing",
]


async def answers(client: TestClient[Any, Any], paths: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in paths:
        response = await client.get(path)
        found[path] = (response.status, response.headers[SEQ], await response.read())
    return found


async def test_rebuilt_read_model_answers_byte_for_byte_the_same(
    store: EventStore, tmp_path: Path
) -> None:
    log = Log(store)
    await write_scenario(log)
    await log.finish("req-bound")
    await log.accept("req-fast", policy=Policy.BIN_PACK, fast=True)
    last = await log.claim("req-fast")
    db_path = tmp_path / "model.sqlite"
    secret = tmp_path / "continue.secret"
    secret.write_text("shared by every API replica")
    config = ApiConfig(continue_secret_file=str(secret))  # continue tokens are the same too
    async with running(Projector(store, db_path)) as projector:
        assert await projector.wait_for(last, 10)
        async with serving(make_app(projector, config=config)) as client:
            paths = [*ENDPOINTS, *await continuation_pages(client)]
            before = await answers(client, paths)
    assert await rebuild(store, db_path) == last
    projector = Projector(store, db_path)
    await projector.open()
    try:
        async with serving(make_app(projector, config=config)) as client:
            after = await answers(client, paths)
    finally:
        await projector.close()
    assert after == before
    assert {seq for _, seq, _ in after.values()} == {str(last)}
    assert {status for status, _, _ in after.values()} == {200, 404}


async def continuation_pages(client: TestClient[Any, Any]) -> list[str]:
    response = await client.get("/v1/requests?limit=2")
    token = (await response.json())["continue"]
    assert token is not None
    return [f"/v1/requests?limit=2&continue={token}"]


async def test_unavailable_before_the_projector_opens(store: EventStore, tmp_path: Path) -> None:
    projector = Projector(store, tmp_path / "not-yet.sqlite")
    async with serving(make_app(projector)) as client:
        response = await client.get("/v1/clusters")
        body = await response.json()
        assert response.status == 503, body
        assert body["error"]["reason"] == "the read model is not available yet"
        await projector.open()
        try:
            assert (await client.get("/v1/clusters")).status == 200
        finally:
            await projector.close()
