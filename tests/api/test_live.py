"""The API of a whole gsch (worker, binder, API) on a real nats-server: submit, read your own
write, follow it to `bound`; then schemathesis against the live server from its own spec."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from gsch.client import publish_request
from gsch.runtime.embedded import EmbeddedNats
from tests.support.live import TOKEN, Live
from tests.support.pipeline import pod_request
from tests.support.waits import eventually


async def test_submit_then_read_your_write_and_follow_it(live: Live) -> None:
    levels = [["edge-daejeon", "cloud-kr"]]
    status, body = await live.submit(pod_request("live-1", levels))
    assert status == 202, body
    assert body["request_id"] == "live-1"
    assert body["state"] in ("queued", "scheduled")  # accepted (and maybe placed already)
    assert body["duplicate"] is False
    assert body["event_sequence"] == body["sequence"] > 0
    # Read your write: with min_seq the very next read has the request.
    async with live.session.get(
        f"{live.url}/v1/requests/live-1", params={"min_seq": body["sequence"]}
    ) as response:
        found = await response.json()
        assert response.status == 200, found
        assert "X-Gsch-Stale" not in response.headers
        assert int(response.headers["X-Gsch-Sequence"]) >= body["sequence"]
    # Follow it until bound, without polling.
    states = []
    async with live.session.get(f"{live.url}/v1/requests/live-1/watch") as feed:
        async with asyncio.timeout(30):
            async for raw in feed.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    states.append(line.removeprefix("event: "))
                    if states[-1] == "RequestBound":
                        break
    assert states[0] == "RequestAccepted"
    assert states[-1] == "RequestBound"
    # The same request again, even written out differently, is harmless.
    same = b" " + msgspec.json.encode(msgspec.json.decode(pod_request("live-1", levels)))
    again, repeated = await live.submit(same)
    assert again == 202, repeated
    assert repeated["duplicate"] is True
    assert repeated["event_sequence"] == body["event_sequence"]
    # Another request under the same id is a conflict; the original is untouched.
    _, before = await live.get("/v1/requests/live-1")
    status, refused = await live.submit(pod_request("live-1", [["edge-daejeon"]], cpu="2"))
    assert status == 409, refused
    assert refused["error"]["field"] == "request_id"
    assert "'live-1' is already used by another request, now bound" in refused["error"]["reason"]
    _, after = await live.get(f"/v1/requests/live-1/events?min_seq={refused['sequence']}")
    assert [e["seq"] for e in after["items"]][-1] == before["last_seq"]  # nothing new


async def test_submissions_are_checked_before_anything_is_published(live: Live) -> None:
    status, first = await live.submit(pod_request("live-ok-1", [["edge-daejeon"]]))
    assert status == 202, first
    deep = b"[" * 100_000 + b"]" * 100_000  # past msgspec's own recursion limit
    nested: list[Any] = []
    for _ in range(100):  # within it, but past the intake's 64 levels
        nested = [nested]
    for bad, code, field, words in [
        (b"[1, 2]", 400, "body", "must be a JSON object"),
        (b"{not json", 400, "body", "must be a JSON object"),
        (b'{"request_id": 5}', 400, None, "request_id must be a non-empty string"),
        (b'{"request_id": "x", "workload": ' + deep + b"}", 400, "body", "nested too deeply"),
        (pod_request("x", [["edge-daejeon"]], deep=nested), 400, "body", "more than 64 levels"),
        (b'{"policy": "GMostRequestedPriority"}', 422, "workload", "is required"),
        (pod_request("bad id", [["edge-daejeon"]]), 422, "request_id", "must be 1-128"),
        (pod_request("r" * 300, [["edge-daejeon"]]), 422, "request_id", "must be 1-128"),
        (pod_request("x", [["edge-daejeon"]], policy="Nope"), 422, "policy", "Nope"),
    ]:
        status, body = await live.submit(bad)
        assert status == code, (bad[:80], body)
        assert body["error"].get("field") == field, body
        assert words in body["error"]["reason"], body
    # Nothing was published in between: the next request is the intake's very next message.
    status, second = await live.submit(pod_request("live-ok-2", [["edge-daejeon"]]))
    assert status == 202, second
    assert second["intake_sequence"] == first["intake_sequence"] + 1


async def test_an_id_a_worker_rejected_is_not_reused(live: Live, nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    await publish_request(nc, b'{"request_id": "live-r", "policy": "Nope"}', "live-r")
    await nc.close()

    async def rejected() -> bool:
        return (await live.get("/v1/requests/live-r"))[1].get("state") == "rejected"

    await eventually(rejected)
    status, body = await live.submit(pod_request("live-r", [["edge-daejeon"]]))
    assert status == 409, body
    assert (
        "already used by a request that was rejected (workload: is required)"
        in body["error"]["reason"]
    )


async def test_cancel_through_the_api_needs_the_token_and_says_what_it_did(live: Live) -> None:
    status, body = await live.submit(pod_request("live-c", [["edge-daejeon", "cloud-kr"]]))
    assert status == 202, body
    url = f"{live.url}/v1/requests/live-c/cancel"
    async with live.session.post(url, json={"reason": "no token"}) as response:
        assert response.status == 401  # a write endpoint: the bearer token is required
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with live.session.post(url, json={"reason": "changed plans"}, headers=auth) as response:
        answer = await response.json()
        assert response.status == 200, answer
    assert answer["cancelled"] is True
    assert answer["previous_state"] in ("queued", "scheduling", "scheduled", "bound")
    async with live.session.get(
        f"{live.url}/v1/requests/live-c", params={"min_seq": answer["event_sequence"]}
    ) as response:
        found = await response.json()
    assert found["state"] == "cancelled"
    assert found["reason"] == "changed plans"
    async with live.session.post(url, headers=auth) as response:  # final: a clear no-op
        again = await response.json()
    assert again["cancelled"] is False
    assert again["message"] == "already cancelled: nothing to cancel"
    async with live.session.post(
        f"{live.url}/v1/requests/bad%20id/cancel", headers=auth
    ) as response:
        assert response.status == 400


HOOKS = Path(__file__).parents[1] / "support" / "schemathesis_hooks.py"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])  # fmt: skip


async def test_schemathesis_finds_no_server_error_and_no_spec_violation(
    live: Live, tmp_path: Path
) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    await live.submit(pod_request("st-1", [["edge-daejeon"]]))
    process = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", f"{live.url}/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "15",
        "--workers", "1",
        "--seed", "1",
        # Change feeds stream until they end; their behaviour is tested in test_watch.py.
        "--exclude-path-regex", "watch$",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--request-timeout", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": str(HOOKS),
             "GSCH_TEST_CONTINUE_SECRET": str(live.continue_secret)}, cwd=tmp_path,
    )  # fmt: skip
    try:
        async with asyncio.timeout(240):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "No issues found" in text or "passed" in text, text[-3000:]
