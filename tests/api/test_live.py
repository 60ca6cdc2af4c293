"""The API of a whole gsch (worker, binder, API) on a real nats-server: submit, read your own
write, follow it to `bound`; then schemathesis against the live server from its own spec."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gsch.runtime.config import load_config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import default_topology_path
from tests.support.pipeline import pod_request, running

TOKEN = "live-token"


@dataclass
class Live:
    url: str
    session: aiohttp.ClientSession
    token_file: Path

    async def submit(self, body: bytes) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.url}/v1/requests", data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ) as response:  # fmt: skip
            return response.status, await response.json()


@pytest.fixture
async def live(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Live]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = load_config(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "log_level": "WARNING",
            "nats": {"url": nats_server.url},
            "api": {"listen": "127.0.0.1:0", "max_wait": 0.5, "submit_wait": 10.0,
                    "auth": {"token_file": str(token_file)}},
            "metrics": {"listen": ""},
            "simulator": {"topology": str(default_topology_path()), "bind_delay": 0.01},
        },
        environ={},
    )  # fmt: skip
    async with running(config, {"api", "worker", "binder"}) as service:
        assert service.api_url is not None
        async with aiohttp.ClientSession() as session:
            yield Live(service.api_url, session, token_file)


async def test_submit_then_read_your_write_and_follow_it(live: Live) -> None:
    status, body = await live.submit(pod_request("live-1", [["edge-daejeon", "cloud-kr"]]))
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
    again, repeated = await live.submit(pod_request("live-1", [["edge-daejeon"]]))
    assert again == 202
    assert repeated["duplicate"] is True
    assert repeated["event_sequence"] == body["event_sequence"]


async def test_submissions_without_an_id_or_with_bad_input(live: Live) -> None:
    status, body = await live.submit(b'{"policy": "GMostRequestedPriority"}')
    assert status == 202, body
    assert body["request_id"].startswith("api-")
    assert body["state"] == "rejected"
    assert "select_clusters" in body["reason"] or "workload" in body["reason"]
    for bad, words in [
        (b"[1, 2]", "must be a JSON object"),
        (b"{not json", "must be a JSON object"),
        (b'{"request_id": 5}', "request_id must be a non-empty string"),
    ]:
        status, body = await live.submit(bad)
        assert status == 400, body
        assert words in body["error"]["reason"]


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
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}, cwd=tmp_path,
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
