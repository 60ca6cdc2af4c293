"""Continue tokens, time ranges and order, ETags, tokens, body limits, the OpenAPI document."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gsch.api.auth import Tokens
from gsch.api.cursor import Cursors
from gsch.api.http import ApiError
from gsch.eventstore.store import EventStore
from gsch.runtime.config import ApiConfig
from tests.support.api import SEQ, WRITE_TOKEN, Api, app_over
from tests.support.scenario import Log, write_scenario


async def test_newest_first_pages(api: Api) -> None:
    seen: list[str] = []
    body = await api.get("/v1/requests?order=newest&limit=3")
    seen += [i["id"] for i in body["items"]]
    await api.log.accept("arrives-between-pages")  # newer than every page: never shows up
    while body["continue"] is not None:
        body = await api.get(f"/v1/requests?order=newest&limit=3&continue={body['continue']}")
        seen += [i["id"] for i in body["items"]]
    assert seen == ["req-queued", "req-requeued", "req-rejected", "req-bound"]


async def test_time_range(api: Api) -> None:
    items = (await api.get("/v1/requests"))["items"]
    at = {item["id"]: item["submitted_at"] for item in items}
    after = at["req-rejected"]
    body = await api.get(f"/v1/requests?submitted_after={after}")
    assert [i["id"] for i in body["items"]] == ["req-rejected", "req-requeued", "req-queued"]
    before = at["req-requeued"]
    body = await api.get(f"/v1/requests?submitted_after={after}&submitted_before={before}")
    assert [i["id"] for i in body["items"]] == ["req-rejected"]
    rfc = "2023-11-14T22:13:20Z"  # 1_700_000_000: before every event of the scenario
    assert len((await api.get(f"/v1/requests?submitted_after={rfc}"))["items"]) == 4
    body = await api.get("/v1/requests?submitted_before=2023-11-14T22:13:20%2B00:00")
    assert body["items"] == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("submitted_after=yesterday", "must be unix seconds or RFC 3339"),
        ("submitted_after=2026-01-01T00:00:00", "must be unix seconds or RFC 3339"),
        ("submitted_before=nan", "out of range"),
        ("submitted_before=-5", "out of range"),
        ("order=random", "'order': unknown value 'random'"),
    ],
)
async def test_bad_ranges(api: Api, query: str, words: str) -> None:
    body = await api.get(f"/v1/requests?{query}", status=400)
    assert words in body["error"]["reason"]


async def test_continue_tokens_are_tamper_evident_and_bound_to_the_query(api: Api) -> None:
    token = (await api.get("/v1/requests?limit=1"))["continue"]
    payload, mac = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    key, query, expires = msgspec.json.decode(raw)
    forged_raw = msgspec.json.encode([key + 2, query, expires])
    forged = base64.urlsafe_b64encode(forged_raw).decode().rstrip("=") + "." + mac
    body = await api.get(f"/v1/requests?limit=1&continue={forged}", status=400)
    assert "not a token this API issued" in body["error"]["reason"]
    other_filter = await api.get(f"/v1/requests?limit=1&state=queued&continue={token}", 400)
    assert "issued for other filters" in other_filter["error"]["reason"]
    good = await api.get(f"/v1/requests?limit=1&continue={token}")
    assert [i["id"] for i in good["items"]] == ["req-rejected"]


async def test_a_signed_token_out_of_range_is_refused_not_a_server_error(
    store: EventStore, tmp_path: Path
) -> None:
    """Whoever holds the secret (or a leaked one) can sign any key: keys and sequences past
    what SQLite binds (2^63) must be a 400, not an overflow deep in a query."""
    last = await write_scenario(Log(store))
    secret = tmp_path / "continue.secret"
    secret.write_text("known to the forger")
    cursors = Cursors(b"known to the forger", window=10**6)
    config = ApiConfig(continue_secret_file=str(secret))
    async with app_over(store, tmp_path / "m.sqlite", last, config=config) as client:
        token = (await (await client.get("/v1/requests?limit=1")).json())["continue"]
        payload = token.split(".")[0]
        _, query, _ = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=="))
        for key, issued in [(2**63, 0), (2**64 - 1, 0), (-1, 0), (0, 2**63), (0, -(2**63))]:
            forged = cursors.issue(key, query, issued)
            response = await client.get("/v1/requests", params={"limit": 1, "continue": forged})
            body = await response.json()
            assert response.status == 400, (key, issued, body)
            assert "not a token this API issued" in body["error"]["reason"]
        # The largest key in range is a page (an empty one), so the forger learns nothing.
        largest = cursors.issue(2**63 - 1, query, last)
        response = await client.get("/v1/requests", params={"limit": 1, "continue": largest})
        assert response.status == 200
        assert (await response.json())["items"] == []


def test_a_token_expires_when_the_log_has_moved_on() -> None:
    cursors = Cursors(b"k", window=10)
    token = cursors.issue(7, "q", sequence=100)
    assert token == Cursors(b"k", window=10).issue(7, "q", 100)  # the same log, the same token
    assert cursors.open(token, "q", sequence=110) == 7
    with pytest.raises(ApiError) as caught:
        cursors.open(token, "q", sequence=111)
    assert caught.value.status == 410
    assert "issued at sequence 100" in caught.value.reason
    with pytest.raises(ApiError) as other:
        Cursors(b"another secret", window=10).open(token, "q", 100)
    assert other.value.status == 400


async def test_expired_token_over_http(store: EventStore, tmp_path: Path) -> None:
    log = Log(store)
    last = await write_scenario(log)
    config = ApiConfig(continue_window=2)
    async with app_over(store, tmp_path / "m.sqlite", last, config=config) as client:
        first = await (await client.get("/v1/requests?limit=1")).json()
        following = f"/v1/requests?limit=1&continue={first['continue']}"
        for rid in ("a", "b"):
            await log.accept(rid)
        assert (await client.get(f"{following}&min_seq={last + 2}")).status == 200
        await log.accept("c")
        response = await client.get(f"{following}&min_seq={last + 3}")
        body = await response.json()
    assert response.status == 410, body
    assert "expired" in body["error"]["reason"]


async def test_etag_and_not_modified(api: Api) -> None:
    first = await api.client.get("/v1/requests/req-bound")
    tag = first.headers["ETag"]
    again = await api.client.get("/v1/requests/req-bound", headers={"If-None-Match": tag})
    assert again.status == 304
    assert again.headers["ETag"] == tag
    assert again.headers[SEQ] == str(api.last)
    assert await again.read() == b""
    listing = await api.client.get("/v1/clusters", headers={"If-None-Match": tag})
    assert listing.status == 200  # another resource, another tag
    await api.log.claim("req-queued")  # the log moves on: a new sequence, a new answer
    await api.projector.wait_for(api.last + 1, 10)
    moved = await api.client.get("/v1/requests/req-bound", headers={"If-None-Match": tag})
    assert moved.status == 200
    assert moved.headers["ETag"] != tag


async def test_writes_need_the_token(api: Api) -> None:
    for headers, status, words in [
        ({}, 401, "needs the write token"),
        ({"Authorization": "Bearer nope"}, 401, "not the write token"),
        ({"Authorization": f"Basic {WRITE_TOKEN}"}, 401, "needs the write token"),
    ]:
        response = await api.client.post("/v1/requests", json={}, headers=headers)
        body = await response.json()
        assert response.status == status, body
        assert words in body["error"]["reason"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # Reads stay open by default.
    assert (await api.client.get("/v1/requests")).status == 200


async def test_writes_are_refused_without_a_configured_token(
    store: EventStore, tmp_path: Path
) -> None:
    async with app_over(store, tmp_path / "m.sqlite", tokens=Tokens()) as client:
        response = await client.post("/v1/requests", json={}, headers={"Authorization": "Bearer x"})
        body = await response.json()
    assert response.status == 403
    assert "no api.auth.token_file" in body["error"]["reason"]


async def test_protected_reads_from_token_files(store: EventStore, tmp_path: Path) -> None:
    (tmp_path / "write").write_text("w-1\n")
    (tmp_path / "read").write_text("r-1\n")
    config = msgspec.convert(
        {
            "auth": {
                "token_file": str(tmp_path / "write"),
                "read_token_file": str(tmp_path / "read"),
            }
        },
        ApiConfig,
    )
    async with app_over(store, tmp_path / "m.sqlite", config=config) as client:
        assert (await client.get("/v1/clusters")).status == 401
        for token in ("r-1", "w-1"):
            auth = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/v1/clusters", headers=auth)).status == 200
        for open_path in ("/livez", "/metrics", "/openapi.json"):
            assert (await client.get(open_path)).status == 200, open_path
        reader = {"Authorization": "Bearer r-1"}
        response = await client.post("/v1/requests", json={}, headers=reader)
        assert response.status == 401  # a read token does not write
        spec = await (await client.get("/openapi.json")).json()
    assert spec["paths"]["/v1/clusters"]["get"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/livez"]["get"]["security"] == []  # open, and saying so


async def test_body_limit(store: EventStore, tmp_path: Path) -> None:
    config = ApiConfig(max_body_bytes=1024)
    async with app_over(
        store, tmp_path / "m.sqlite", config=config, tokens=Tokens(write="t")
    ) as client:
        response = await client.post(
            "/v1/requests", data=b"{" + b" " * 4096 + b"}",
            headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        )  # fmt: skip
        body = await response.json()
    assert response.status == 413, body
    assert "larger than 1024 bytes" in body["error"]["reason"]


async def test_openapi_document(api: Api) -> None:
    spec: dict[str, Any] = await (await api.client.get("/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    paths = spec["paths"]
    for path in ("/v1/requests", "/v1/requests/{id}", "/v1/requests/{id}/watch", "/v1/watch",
                 "/v1/clusters/{name}/nodes", "/v1/queues", "/readyz", "/metrics"):  # fmt: skip
        assert path in paths, path
    listing = paths["/v1/requests"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"state", "policy", "cluster", "project", "limit", "continue", "min_seq"} <= names
    assert {"submitted_after", "submitted_before", "order"} <= names
    ok = listing["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RequestPage"
    }
    assert "X-Gsch-Sequence" in ok["headers"]
    assert "410" in listing["responses"]
    page = spec["components"]["schemas"]["RequestPage"]
    assert set(page["required"]) == {"items", "continue", "sequence"}
    submit = paths["/v1/requests"]["post"]
    assert submit["security"] == [{"bearer": []}]
    # What clients generated from the document need (Redocly's recommended rules): every
    # operation states its security, open reads included; where the API is; the licence.
    assert all("security" in op for path in paths.values() for op in path.values())
    assert listing["security"] == []  # reads are open here
    assert spec["servers"] == [{"url": "/", "description": "The gsch API serving this document"}]
    assert spec["info"]["license"]["identifier"] == "Apache-2.0"
    assert {"202", "401", "403", "413"} <= set(submit["responses"])
    assert paths["/v1/watch"]["get"]["responses"]["200"]["content"].keys() == {"text/event-stream"}
    assert all(
        "sequence" in schema.get("required", [])
        for name, schema in spec["components"]["schemas"].items()
        if name in ("RequestPage", "RequestDetail", "ClusterList", "QueueList", "ErrorBody")
    )


async def test_queues(api: Api) -> None:
    body = await api.get("/v1/queues")
    assert body["items"] == [
        {"level": "first", "queued": 0, "blocked": 0, "scheduling": 0, "scheduled": 0},
        {"level": "fast", "queued": 1, "blocked": 0, "scheduling": 0, "scheduled": 0},
        {"level": "base", "queued": 1, "blocked": 0, "scheduling": 0, "scheduled": 0},
    ]
