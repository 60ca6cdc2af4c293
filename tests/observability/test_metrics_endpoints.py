"""Every process serves /metrics by default: without a flag a worker or a binder takes a free
loopback port and logs its URL; its closed label sets are there at 0 from the start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from gsch.eventstore.store import EventStore
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.procs import ChildProcess, serve_args
from tests.support.fleet import FAST_ENV


async def logged_metrics_url(log: Path, timeout: float = 60) -> str:
    async with asyncio.timeout(timeout):
        while True:
            text = await asyncio.to_thread(_read, log)
            for line in text.splitlines():
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("msg") == "metrics listening":
                    return str(entry["url"])
            await asyncio.sleep(0.1)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_workers_and_binders_expose_metrics_on_a_logged_port(
    nats_server: EmbeddedNats, store: EventStore, tmp_path: Path
) -> None:
    env = {**FAST_ENV, "GSCH_LOG_LEVEL": "INFO"}
    children = {
        role: ChildProcess(
            serve_args(role, nats_server.url, tmp_path / role, extra), tmp_path / f"{role}.log", env
        )
        for role, extra in (("worker", []), ("binder", ["--generated-topology", "2x1"]))
    }
    try:
        for child in children.values():
            await child.start()
        texts = {}
        async with aiohttp.ClientSession() as session:
            for role, child in children.items():
                url = await logged_metrics_url(child.log_path)
                assert url.startswith("http://127.0.0.1:"), url
                assert url.endswith("/metrics"), url
                async with session.get(url) as response:
                    assert response.status == 200
                    texts[role] = await response.text()
    finally:
        for child in children.values():
            await child.stop()
    worker, binder = texts["worker"], texts["binder"]
    for text in (worker, binder):
        assert "gsch_build_info{" in text
        assert "_created" not in text  # no second series per child
    for result in ("scheduled", "unschedulable", "error"):
        line = f'gsch_schedule_attempts_total{{policy="GBinPackPriority",result="{result}"}} 0.0'
        assert line in worker
    assert 'gsch_placement_conflicts_total{scope="node"} 0.0' in worker
    assert 'gsch_request_retries_total{reason="binding_failed"} 0.0' in binder
    assert "gsch_schedule_attempts_total{" not in binder  # each role, its own metrics
