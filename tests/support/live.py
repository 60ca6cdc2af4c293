"""A whole gsch (worker, binder, API with its planner process) on a real nats-server, and the
HTTP client a test drives it with; the planner processes it started, to freeze or kill."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gsch.runtime.config import load_config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.secrets import CONTINUE_SECRET
from gsch.runtime.service import default_topology_path
from tests.support.pipeline import running

TOKEN = "live-token"
PLAN_TOKEN = "live-plan-token"
PLAN_TIMEOUT = 3.0


@dataclass
class Live:
    url: str
    session: aiohttp.ClientSession
    data_dir: Path

    @property
    def continue_secret(self) -> Path:
        return self.data_dir / CONTINUE_SECRET

    async def post(self, path: str, body: bytes, token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.post(f"{self.url}{path}", data=body, headers=headers) as answer:
            return answer.status, await answer.json()

    async def submit(self, body: bytes) -> tuple[int, Any]:
        return await self.post("/v1/requests", body)

    async def plan(self, body: bytes, token: str | None = PLAN_TOKEN) -> tuple[int, Any]:
        return await self.post("/v1/plan", body, token)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.url}{path}") as answer:
            return answer.status, await answer.json()


@contextlib.asynccontextmanager
async def live_gsch(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Live]:
    """One planner process, one plan waiting at most, plans stopped after PLAN_TIMEOUT."""
    tokens = {}
    for name, token in (("token", TOKEN), ("plan-token", PLAN_TOKEN)):
        tokens[name] = tmp_path / name
        tokens[name].write_text(token + "\n")
    data_dir = tmp_path / "data"
    config = load_config(
        None,
        {
            "data_dir": str(data_dir),
            "log_level": "WARNING",
            "nats": {"url": nats_server.url},
            "api": {"listen": "127.0.0.1:0", "max_wait": 0.5, "submit_wait": 10.0,
                    "plan_processes": 1, "plan_queue": 1, "plan_timeout": PLAN_TIMEOUT,
                    "auth": {"token_file": str(tokens["token"]),
                             "plan_token_file": str(tokens["plan-token"])}},
            "metrics": {"listen": ""},
            "simulator": {"topology": str(default_topology_path()), "bind_delay": 0.01},
        },
        environ={},
    )  # fmt: skip
    async with running(config, {"api", "worker", "binder"}) as service:
        assert service.api_url is not None
        async with aiohttp.ClientSession() as session:
            yield Live(service.api_url, session, data_dir)


def planner_pids() -> list[int]:
    """The planner processes this test process started (its children only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])
            command = (entry / "cmdline").read_bytes()
            if parent == os.getpid() and b"gsch.scheduler.planner_process" in command:
                found.append(int(entry.name))
    return found
